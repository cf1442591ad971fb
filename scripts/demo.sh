#!/usr/bin/env bash
# The agent's main job on sample input: detections on still images, then the daemon watching a clip built
# from a sample photo and publishing to a real Mosquitto started here on a free loopback port.
set -euo pipefail
BIN=${1:-target/release/edge-agent}
SHARED=${2:-../shared}
SCENES=$SHARED/data/scenes
WORK=var/demo
mkdir -p "$WORK"

echo "== 1. edge-agent analyze: people and vehicles in sample photos"
"$BIN" analyze "$SCENES/coco_000000000139.jpg" "$SCENES/coco_000000001532.jpg" "$SCENES/hy_test_img.jpg"

echo
echo "== 2. edge-agent run: a camera (a clip of a street scene) → detector → MQTT"
CLIP=$WORK/street.mp4
if [ ! -f "$CLIP" ]; then
  gst-launch-1.0 -q filesrc location="$SCENES/hy_test_img.jpg" ! jpegdec ! videoconvert ! videoscale \
    ! video/x-raw,width=1280,height=720 ! imagefreeze num-buffers=100 ! video/x-raw,framerate=25/1 \
    ! videoconvert ! x264enc speed-preset=ultrafast ! mp4mux ! filesink location="$CLIP"
fi
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$PORT" > "$WORK/mosquitto.conf"
/usr/sbin/mosquitto -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
BROKER=$!
trap 'kill $BROKER $SUB 2>/dev/null || true' EXIT
sleep 0.5
# Everything but the snapshot JPEGs (binary), which the messages below reference.
mosquitto_sub -p "$PORT" -v -t 'checkpoint/+/+/+/+/+/status' -t 'checkpoint/+/+/+/+/+/stats' \
  -t 'checkpoint/+/+/+/+/+/+/detections' -t 'checkpoint/+/+/+/+/+/+/events' -t 'checkpoint/+/+/+/+/+/+/alerts' \
  > "$WORK/messages.txt" &
SUB=$!
cat > "$WORK/agent.toml" <<TOML
[site]
city = "xining"
district = "chengzhong"
town = "nanchuan"
village = "xiaozhuang"
checkpoint = "east-gate"
name = "小庄村东口"

[mqtt]
host = "127.0.0.1"
port = $PORT
stats_interval_secs = 2

[models]
dir = "$(realpath "${EDGE_AGENT_MODELS_DIR:-var/models}")"

[storage]
state_dir = "$(realpath "$WORK")/state"

# The demo ends by itself: no duty desk page, and metrics on a free port.
[web]
enabled = false

[metrics]
listen = "127.0.0.1:0"

[[cameras]]
id = "gate-in"
name = "东口进村"
url = "file://$(realpath "$CLIP")"
loop_file = true
detect_fps = 5
TOML
"$BIN" check-config "$WORK/agent.toml"
"$BIN" run --config "$WORK/agent.toml" 2> "$WORK/agent.log" &
AGENT=$!
sleep 6
kill -TERM $AGENT
wait $AGENT || true
sleep 0.5
echo "-- agent log"
cat "$WORK/agent.log"
echo "-- MQTT messages received (first of each topic, payloads shortened)"
python3 - "$WORK/messages.txt" <<'PY'
import json, sys
seen = {}
for line in open(sys.argv[1], encoding="utf-8"):
    topic, _, payload = line.rstrip("\n").partition(" ")
    msg = json.loads(payload)
    key = (topic, msg.get("state"))
    if key in seen:
        continue
    seen[key] = True
    if topic.endswith("/events"):
        plate = msg["plate"]["text"] if msg.get("plate") else "-"
        print(f"{topic}\n    {msg['phase']} {msg['label']} plate={plate} direction={msg['direction']} id={msg['id'][:8]}")
    elif topic.endswith("/detections"):
        objs = ", ".join(f'{d["label"]} {d["score"]:.2f} {d["box"]}' for d in msg["detections"])
        print(f"{topic}\n    {objs}")
    elif topic.endswith("/stats"):
        c = msg["cameras"][0]
        print(f"{topic}\n    camera {c['id']}: {c['frames_in']} frames in, {c['frames_analysed']} analysed, inference {c['inference_ms']} ms")
    else:
        cams = ", ".join(f'{c["id"]}={c["state"]}' for c in msg["cameras"])
        print(f"{topic}\n    {msg['state']} ({cams})")
PY
