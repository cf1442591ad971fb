import sys, json, numpy as np, cv2, onnxruntime as ort
sess = ort.InferenceSession("/work/shared/models/yolox_nano_416.onnx", providers=["CPUExecutionProvider"])
def run(path):
    img = cv2.imread(path)
    h, w = img.shape[:2]
    r = min(416/h, 416/w)
    nh, nw = int(round(h*r)), int(round(w*r))
    pad = np.full((416,416,3), 114, np.uint8)
    pad[:nh,:nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    x = pad.transpose(2,0,1)[None].astype(np.float32)
    out = sess.run(None, {"images": x})[0][0]
    grids=[]; strides=[]
    for s in (8,16,32):
        g=416//s; yv,xv=np.meshgrid(np.arange(g),np.arange(g),indexing="ij")
        grids.append(np.stack((xv,yv),2).reshape(-1,2)); strides.append(np.full((g*g,1),s))
    grids=np.concatenate(grids); strides=np.concatenate(strides)
    cxcy=(out[:,:2]+grids)*strides; wh=np.exp(out[:,2:4])*strides
    boxes=np.concatenate([cxcy-wh/2, cxcy+wh/2],1)/r
    scores=out[:,4:5]*out[:,5:]
    res=[]
    for c in range(80):
        sc=scores[:,c]; m=sc>0.3
        if not m.any(): continue
        b=boxes[m]; s=sc[m]
        idx=cv2.dnn.NMSBoxes([[float(x1),float(y1),float(x2-x1),float(y2-y1)] for x1,y1,x2,y2 in b], s.tolist(), 0.3, 0.45)
        for i in np.array(idx).flatten():
            res.append({"class":c,"score":round(float(s[i]),4),"box":[round(float(v),1) for v in b[i]]})
    res.sort(key=lambda d:-d["score"])
    return w,h,res
for p in sys.argv[1:]:
    w,h,res=run(p)
    print(json.dumps({"file":p.split("/")[-1],"width":w,"height":h,"detections":res}))
