// Duty desk page: the recent list, then live items over server-sent events. No external code.
"use strict";

const T = {
  zh: {
    title: "卡口值班台", live: "实时连接", sound_on: "声音：开", sound_off: "声音：关", logout: "退出",
    camera: "摄像头", show: "显示", all: "全部", alerts: "告警", vehicles: "车辆", people: "行人",
    audit: "处置记录", time: "时间", who: "处置人", alert: "告警",
    person: "行人", vehicle: "车辆", in: "进村", out: "出村", no_plate: "未识别车牌",
    new: "出现", update: "更新", end: "离开", ack: "处置", acked: "已处置", note: "备注（可选）", platform: "上级平台",
    watch_list: "布控车辆", key_region: "重点地区车辆", crowding: "人员聚集", after_hours: "非值守时段出现",
    camera_offline: "摄像头离线", camera_frozen: "画面冻结", camera_covered: "画面遮挡", camera_moved: "摄像头移位", recovered: "已恢复", since: "起于",
    critical: "紧急", warning: "注意", info: "提示",
    retention: (d) => `快照和记录保留 ${d} 天，到期自动删除`, new_alert: "新告警",
    people_in: (n, z, s) => `${z} 区域 ${n} 人，持续 ${s} 秒`, one_char: "（一位字符不同）",
    online: "在线", connecting: "连接中", stalled: "无画面", unauthorized: "认证失败", unreachable: "无法连接", failed: "故障", ended: "已结束", disabled: "已停用", stopped: "已停止",
    operator: "值班员", viewer: "查看员", admin: "管理员",
    car: "小汽车", bus: "公交车", truck: "货车", motorcycle: "摩托车", bicycle: "自行车", no_snapshot: "离开后显示快照", clip: (s) => `录像 ${s} 秒`,
    level: (l) => ({ city: "市级", district: "区县级", town: "镇级", village: "村级", checkpoint: "卡口级" }[l] || l) + "布控",
    chart: "今日流量", live_view: "实时画面", setup: "设置", freeze: "冻结画面", name: "名称", draw_line: "画线", draw_zone: "画区域", draw_mask: "画屏蔽区", finish: "完成", save: "保存", test: "测试", camera_edit: "添加或修改摄像头", line: "线", zone: "区域", mask: "屏蔽区", remove: "删除", hint_line: "点两下画线，再点一下线的进村一侧", hint_in: "点线的进村一侧", hint_poly: "逐点点击，点“完成”结束", saved: "已保存并生效", saved_not_applied: "已保存，但未能生效（见日志）", testing: "正在连接…", test_ok: (c) => `连接成功：${c.codec} ${c.width}×${c.height}${c.fps ? " " + c.fps + " 帧/秒" : ""}`, test_failed: (k, r) => `连接失败（${({ unreachable: "无法连接", unauthorized: "用户名或密码错误", bad_input: "不是可用的视频流", bad_url: "地址格式不对", missing_plugin: "缺少解码组件", hardware_decoder: "硬件解码失败" })[k] || "错误"}）：${r}`, search: "历史查询", plate_q: "车牌（可部分）", kind: "类型", direction: "方向", no_line: "未过线",
    from: "开始时间", to: "结束时间", search_go: "查询", more: "更多", results: (n) => `共 ${n} 条`, search_failed: "查询失败",
    no_picture: "无快照", open_alerts: (n) => `${n} 条告警待处置`, hour: (h) => `${h} 时`,
    totals: (v, vi, vo, p, pi, po, pl, al) => `今日累计：车辆 ${v}（进村 ${vi} / 出村 ${vo}）· 行人 ${p}（进村 ${pi} / 出村 ${po}）· 识别车牌 ${pl} · 告警 ${al}`,
    storage_full: "存储空间不足：新的抓拍暂不保存，事件和告警照常记录、上报",
    storage_io_error: "存储故障：本机磁盘无法写入",
    held: (n) => `${n} 条记录暂存内存，磁盘恢复后自动写入并补传`,
    uplink_disconnected: "未连接上级平台：记录已保存在本机，恢复后自动补传",
    uplink_stalled: "上报受阻：上级平台未确认接收，请联系平台运维",
    gat1400_unauthorised: "视图库拒绝本设备的用户名或密码：过车记录保存在本机，请核对 gat1400 设置",
    gat1400_unreachable: "视图库连不上：过车记录保存在本机，恢复后自动补传",
    notify: "群通知", sent_ok: "发送正常", sent_rejected: "被拒收", sent_rate_limited: "发送过快，稍后补发", sent_failed: "发送失败，重试中", not_sent: "尚未发送",
    waiting: (n) => `${n} 条待发送`, mute: "静音", unmute: "解除", every_rule: "全部规则", every_camera: "全部摄像头", minutes: "分钟",
    muted_until: (r, c, u) => `已静音：${r} · ${c}，至 ${u}`,
  },
  en: {
    title: "Checkpoint duty desk", live: "Live connection", sound_on: "Sound: on", sound_off: "Sound: off", logout: "Sign out",
    camera: "Camera", show: "Show", all: "All", alerts: "Alerts", vehicles: "Vehicles", people: "People",
    audit: "Dispositions", time: "Time", who: "By", alert: "Alert",
    person: "person", vehicle: "vehicle", in: "in", out: "out", no_plate: "plate not read",
    new: "appeared", update: "updated", end: "left", ack: "Dispose", acked: "Disposed", note: "Note (optional)", platform: "platform",
    watch_list: "Watch-list vehicle", key_region: "Key-region vehicle", crowding: "Crowding", after_hours: "After-hours presence",
    camera_offline: "Camera offline", camera_frozen: "Picture frozen", camera_covered: "Picture covered", camera_moved: "Camera moved", recovered: "recovered", since: "since",
    critical: "critical", warning: "warning", info: "info",
    retention: (d) => `Snapshots and records are kept ${d} days, then deleted`, new_alert: "New alert",
    people_in: (n, z, s) => `${n} people in ${z} for ${s} s`, one_char: " (one character differs)",
    online: "online", connecting: "connecting", stalled: "stalled", unauthorized: "unauthorized", unreachable: "unreachable", failed: "failed", ended: "ended", disabled: "disabled", stopped: "stopped",
    operator: "operator", viewer: "viewer", admin: "admin",
    car: "car", bus: "bus", truck: "truck", motorcycle: "motorcycle", bicycle: "bicycle", no_snapshot: "snapshot when it has left", clip: (s) => `clip ${s} s`,
    level: (l) => `${l} policy`,
    chart: "Today's flow", live_view: "Live view", setup: "Set-up", freeze: "Freeze frame", name: "Name", draw_line: "Draw line", draw_zone: "Draw zone", draw_mask: "Draw mask", finish: "Finish", save: "Save", test: "Test", camera_edit: "Add or fix a camera", line: "line", zone: "zone", mask: "mask", remove: "Remove", hint_line: "Click twice for the line, then once on its village (in) side", hint_in: "Click the line's village (in) side", hint_poly: "Click each corner, then Finish", saved: "Saved and applied", saved_not_applied: "Saved, but not applied (see the log)", testing: "Connecting…", test_ok: (c) => `Connected: ${c.codec} ${c.width}×${c.height}${c.fps ? " " + c.fps + " fps" : ""}`, test_failed: (k, r) => `Cannot use it (${k}): ${r}`, search: "History", plate_q: "Plate (or part)", kind: "Type", direction: "Direction", no_line: "no line crossed",
    from: "From", to: "To", search_go: "Search", more: "More", results: (n) => `${n} found`, search_failed: "Search failed",
    no_picture: "no snapshot", open_alerts: (n) => `${n} alert(s) to dispose of`, hour: (h) => `${h}:00`,
    totals: (v, vi, vo, p, pi, po, pl, al) => `Today: vehicles ${v} (in ${vi} / out ${vo}) · people ${p} (in ${pi} / out ${po}) · plates read ${pl} · alerts ${al}`,
    storage_full: "Disk full: new snapshots are not kept; events and alerts are still recorded and sent",
    storage_io_error: "Disk failure: this PC cannot write to its disk",
    held: (n) => `${n} record(s) held in memory, written and sent when the disk recovers`,
    uplink_disconnected: "Not connected to the platform: records are kept here and sent when it is back",
    uplink_stalled: "Reports stalled: the platform is not acknowledging them; tell its operators",
    gat1400_unauthorised: "The video image database refuses this device's user or password: pass records are kept here; check the gat1400 settings",
    gat1400_unreachable: "The video image database cannot be reached: pass records are kept here and sent when it is back",
    notify: "Work groups", sent_ok: "sending", sent_rejected: "refused", sent_rate_limited: "too fast, sent later", sent_failed: "failing, retrying", not_sent: "nothing sent yet",
    waiting: (n) => `${n} waiting`, mute: "Mute", unmute: "Unmute", every_rule: "every rule", every_camera: "every camera", minutes: "minutes",
    muted_until: (r, c, u) => `Muted: ${r} · ${c} until ${u}`,
  },
};

const state = { lang: "zh", me: null, items: [], sound: false, audio: null, clips: {} };
const $ = (id) => document.getElementById(id);
const t = (key, ...args) => { const v = T[state.lang][key]; return typeof v === "function" ? v(...args) : (v ?? key); };

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function when(ts) {
  const d = new Date(ts);
  return isNaN(d) ? "" : d.toLocaleString(state.lang === "zh" ? "zh-CN" : "en-GB", { hour12: false });
}

function camName(id) {
  return (state.me && state.me.cameras && state.me.cameras[id]) || id;
}

function translatePage() {
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  document.title = t("title");
  for (const e of document.querySelectorAll("[data-t]")) e.textContent = t(e.dataset.t);
  for (const e of document.querySelectorAll("[data-t-title]")) e.title = t(e.dataset.tTitle);
  $("lang").textContent = state.lang === "zh" ? "English" : "中文";
  $("sound").textContent = t(state.sound ? "sound_on" : "sound_off");
  if (state.me) $("retention").textContent = t("retention", state.me.retention_days);
  if (state.me) $("user").textContent = `${state.me.user} (${t(state.me.role)})`;
}

function plateTag(p) {
  if (!p) return el("span", { class: "meta" }, t("no_plate"));
  return el("span", { class: "plate " + (p.color || ""), "data-plate": p.text }, p.text);
}

// Events: one row per object, replaced as its new/update/end messages arrive.
function eventRow(e) {
  // No picture until the object has left: a placeholder says so, and the `end` message replaces the row.
  const img = e.snapshot ? el("img", { alt: "", loading: "lazy", src: "/snapshots/" + e.id }) : el("div", { class: "snap-placeholder" }, t(e.phase === "end" ? "no_picture" : "no_snapshot"));
  const dir = e.direction ? " · " + t(e.direction) : "";
  return el("li", { class: "item event " + e.type, id: "ev-" + e.id, "data-camera": e.camera, "data-kind": e.type },
    img,
    el("div", { class: "body" },
      el("div", { class: "head" }, e.type === "vehicle" ? plateTag(e.plate) : el("strong", {}, t("person")), el("span", { class: "tag" }, t(e.phase) + dir)),
      el("div", { class: "meta" }, `${camName(e.camera)} · ${t(e.label)} · ${when(e.ts)}`)));
}

// A kept clip plays beside the snapshot of the event (or alert) it shows.
function clipFor(...ids) {
  for (const id of ids) if (id && state.clips[id]) return state.clips[id];
  return null;
}

function clipPlayer(c) {
  return el("div", { class: "clip", "data-clip": c.id },
    el("video", { controls: "", preload: "metadata", playsinline: "", muted: "", src: "/clips/" + c.id + ".mp4" }),
    el("div", { class: "meta" }, t("clip", Math.round(c.duration_s))));
}

function addClip(li, c) {
  if (!li || li.querySelector(`.clip[data-clip="${c.id}"]`)) return;
  li.querySelector(".body").append(clipPlayer(c));
}

function onClip(c) {
  for (const id of [c.id, c.event_id, ...(c.alert_ids || [])]) if (id) state.clips[id] = c;
  addClip($("ev-" + c.event_id), c);
  for (const a of c.alert_ids || []) addClip($("al-" + a), c);
  for (const li of document.querySelectorAll(`li.alert[data-event="${c.event_id}"]`)) addClip(li, c);
}

function alertText(a) {
  if (a.kind === "crowding") return t("people_in", a.count, a.zone, Math.round(a.duration_s));
  if (a.health) return (a.health.state === "cleared" ? t("recovered") + " · " : "") + `${t("since")} ${when(a.health.since)} · ${a.health.detail}`;
  const parts = [];
  if (a.matched && a.matched.distance === 1) parts.push(a.matched.entry + t("one_char"));
  if (a.prefix) parts.push(a.prefix);
  if (a.direction) parts.push(t(a.direction));
  if (a.reason) parts.push(a.reason);
  if (a.level) parts.push(t("level", a.level));
  return parts.join(" · ");
}

function alertRow(item) {
  const a = item.alert;
  const img = el("img", { alt: "", class: "snap", "data-event": a.event_id || "" });
  if (a.event_id) { img.src = "/snapshots/" + a.event_id; img.addEventListener("error", () => img.removeAttribute("src"), { once: true }); }
  const body = el("div", { class: "body" },
    el("div", { class: "head" }, el("span", { class: "tag " + a.severity }, t(a.severity)), el("strong", {}, t(a.kind)), a.plate ? plateTag(a.plate) : null),
    el("div", {}, alertText(a)),
    el("div", { class: "meta" }, `${camName(a.camera)} · ${when(a.ts)} · ${a.rule}`));
  const li = el("li", { class: "item alert " + a.severity + (item.ack ? " acked" : ""), id: "al-" + a.id, "data-camera": a.camera, "data-kind": "alert", "data-event": a.event_id || "" }, img, body);
  const c = clipFor(a.id, a.event_id);
  if (c) body.append(clipPlayer(c));
  if (item.ack) {
    const d = item.ack;
    const where = d.source === "platform" ? `（${t("platform")}）` : "";
    const parts = [outcomeLabel(d.outcome), `${d.by}${where}`, when(d.at), d.note].filter((x) => x);
    body.append(el("div", { class: "acked-by" }, `${t("acked")}: ${parts.join(" · ")}`));
  } else if (operates()) {
    const select = el("select", { class: "outcome" }, ...(state.me.outcomes || []).map((o) => el("option", { value: o.id }, state.lang === "zh" ? o.zh : o.en)));
    const note = el("input", { class: "note", maxlength: "200", placeholder: t("note") });
    body.append(el("div", { class: "dispose" }, select, note, el("button", { class: "ack", type: "button", onclick: () => dispose(a.id, select.value, note.value) }, t("ack"))));
  }
  return li;
}

// Operators and admins act on alerts; admins also set the checkpoint up.
function operates() {
  return !!state.me && (state.me.role === "operator" || state.me.role === "admin");
}

function visible(li) {
  const cam = $("f-camera").value, kind = $("f-type").value;
  return (!cam || li.dataset.camera === cam) && (!kind || li.dataset.kind === kind);
}

function place(li) {
  const old = $(li.id);
  if (old) old.replaceWith(li); else $("feed").prepend(li);
  li.hidden = !visible(li);
  while ($("feed").children.length > 300) $("feed").lastChild.remove();
}

function refreshAlertSnapshots(eventId) {
  for (const img of document.querySelectorAll(`img.snap[data-event="${eventId}"]`)) img.src = "/snapshots/" + eventId + "?t=" + Date.now();
}

function beep() {
  if (!state.sound) return;
  try {
    state.audio = state.audio || new AudioContext();
    const o = state.audio.createOscillator(), g = state.audio.createGain();
    o.frequency.value = 880; g.gain.value = 0.2; o.connect(g); g.connect(state.audio.destination);
    o.start(); o.stop(state.audio.currentTime + 0.4);
  } catch (_) { /* no audio device */ }
}

function cue(a) {
  const b = $("banner");
  b.textContent = `${t("new_alert")}: ${t(a.kind)} ${a.plate ? a.plate.text : ""} · ${camName(a.camera)}`;
  b.hidden = false;
  b.classList.remove("banner"); void b.offsetWidth; b.classList.add("banner");
  state.cued = a.id;
  showOpen();
  beep();
}

// Alerts not yet disposed of: their number is in the title and the banner until each is disposed of.
function openAlerts() {
  const open = new Set();
  for (const i of state.items) if (i.type === "alert") { if (i.ack) open.delete(i.alert.id); else open.add(i.alert.id); }
  return open;
}

function showOpen() {
  const open = openAlerts();
  document.title = (open.size ? `(${open.size}) ` : "") + t("title");
  const b = $("banner");
  b.dataset.open = open.size;
  if (state.cued && open.has(state.cued)) return; // the new-alert text stays until that alert is disposed of
  state.cued = null;
  b.hidden = open.size === 0;
  b.textContent = t("open_alerts", open.size);
}

function handle(item, live) {
  if (item.type === "event" && item.event.merged_into) {
    // The same vehicle as another chain, which carries on: not a passing of its own.
    const li = $("ev-" + item.event.id);
    if (li) li.remove();
  } else if (item.type === "event") {
    const li = eventRow(item.event);
    const c = clipFor(item.event.id);
    if (c) addClip(li, c);
    place(li);
    if (item.event.snapshot) refreshAlertSnapshots(item.event.id);
  } else if (item.type === "alert") {
    state.items.push(item);
    addOption($("m-rule"), item.alert.rule, item.alert.rule);
    place(alertRow(item));
    if (live) cue(item.alert); else showOpen();
  } else if (item.type === "ack") {
    const li = $("al-" + item.alert);
    for (const data of state.items.filter((i) => i.type === "alert" && i.alert.id === item.alert)) data.ack = item.ack;
    const data = state.items.find((i) => i.type === "alert" && i.alert.id === item.alert);
    if (li && data) place(alertRow(data));
    showOpen();
    if (!$("audit").hidden) loadAudit();
  } else if (item.type === "cameras") {
    renderCameras(item.cameras);
    renderNotice(item.agent);
    renderNotify(item.notify);
  } else if (item.type === "clip") {
    onClip(item.clip);
  } else if (item.type === "resync") {
    loadRecent();
  }
  if (live && item.type === "event" && item.event.phase === "end") chartSoon();
}

function renderCameras(cams) {
  // Names follow the agent's configuration (a reload may have added or renamed cameras).
  if (state.me) { state.me.cameras = state.me.cameras || {}; for (const c of cams) if (c.name) state.me.cameras[c.id] = c.name; }
  const box = $("cameras");
  // A camera that is blind (offline, frozen, covered, moved) is a red tile saying what is wrong and since when.
  const tile = (c) => {
    const problems = c.problems || [];
    if (!problems.length) return el("span", { class: "cam " + c.state, title: c.last_error || "", "data-camera": c.id }, `${c.name || c.id}: ${t(c.state)}`);
    const text = problems.map((p) => `${t(p.kind)}（${t("since")} ${when(p.since)}）`).join("，");
    return el("span", { class: "cam blind", title: problems.map((p) => p.detail).join("\n"), "data-camera": c.id }, `${c.name || c.id}: ${text}`);
  };
  box.replaceChildren(...cams.map(tile));
  for (const sel of [$("f-camera"), $("s-camera"), $("m-camera"), $("l-camera"), $("g-camera")]) for (const c of cams) addOption(sel, c.id, c.name || c.id);
}

function addOption(sel, value, label) {
  if (![...sel.options].some((o) => o.value === value)) sel.append(el("option", { value }, label));
}

// The work-group channels: each one's last result (red when the service refused it or cannot be reached),
// the mutes in force, and for operators a form to mute a rule or a camera for a while.
function renderNotify(n) {
  const box = $("notify");
  box.hidden = !n;
  if (!n) return;
  const chan = (c) => {
    const last = c.last;
    const bad = last && (last.outcome === "rejected" || last.outcome === "failed");
    const text = last ? `${t("sent_" + last.outcome)} ${when(last.at)}` : t("not_sent");
    const why = last && last.outcome !== "ok" ? [last.code, last.message].filter((x) => x != null).join(" ") : "";
    return el("span", { class: "chan" + (bad ? " bad" : ""), title: why, "data-channel": c.id, "data-outcome": last ? last.outcome : "" }, `${c.id}: ${text}`);
  };
  const chans = n.channels.map(chan);
  if (n.waiting > 0) chans.push(el("span", { class: "chan waiting" }, t("waiting", n.waiting)));
  $("notify-channels").replaceChildren(...chans);
  const operator = operates();
  $("notify-mutes").replaceChildren(...n.mutes.map((m) => el("span", { class: "muted", "data-rule": m.rule || "", "data-camera": m.camera || "" },
    t("muted_until", m.rule ? t(m.rule) : t("every_rule"), m.camera ? camName(m.camera) : t("every_camera"), when(m.until)), " ",
    operator ? el("button", { type: "button", class: "unmute", onclick: () => mute(m.rule, m.camera, 0) }, t("unmute")) : null)));
  $("mute-form").hidden = !operator;
}

async function mute(rule, camera, minutes) {
  const r = await fetch("/api/notify/mute", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ rule: rule || null, camera: camera || null, minutes }) });
  if (r.ok) renderNotify((await r.json()).notify);
}

// The agent itself: a full or failing disk, the link to the platform. Hidden while all is well.
function renderNotice(agent) {
  const box = $("notice");
  if (!agent) { box.hidden = true; return; }
  const lines = [];
  if (agent.storage === "full") lines.push([t("storage_full"), true]);
  if (agent.storage === "io_error") lines.push([t("storage_io_error"), true]);
  if (agent.held > 0) lines.push([t("held", agent.held), false]);
  if (agent.uplink === "disconnected") lines.push([t("uplink_disconnected"), false]);
  if (agent.uplink === "stalled") lines.push([t("uplink_stalled"), true]);
  if (agent.gat1400 === "unauthorised") lines.push([t("gat1400_unauthorised"), true]);
  if (agent.gat1400 === "unreachable") lines.push([t("gat1400_unreachable"), false]);
  box.title = (agent.problems || []).join("\n");
  box.replaceChildren(...lines.map(([text, bad]) => el("p", { class: bad ? "bad" : "", "data-notice": "1" }, text)));
  box.hidden = lines.length === 0;
}

// Today's flow, per hour of the page's day: closed and open periods of every camera, summed here.
function dayBounds() {
  const from = new Date(); from.setHours(0, 0, 0, 0);
  const to = new Date(from); to.setDate(to.getDate() + 1);
  return [from, to];
}

async function loadChart() {
  const [from, to] = dayBounds();
  const r = await fetch(`/api/counts?from=${encodeURIComponent(from.toISOString())}&to=${encodeURIComponent(to.toISOString())}`);
  if (!r.ok) return;
  const { periods } = await r.json();
  const hours = Array.from({ length: 24 }, () => ({ vehicles: 0, people: 0 }));
  const sum = { v: 0, vi: 0, vo: 0, p: 0, pi: 0, po: 0, pl: 0, al: 0 };
  for (const p of periods) {
    const h = new Date(p.period_start).getHours();
    const v = p.vehicles.in + p.vehicles.out + p.vehicles.none, q = p.people.in + p.people.out + p.people.none;
    hours[h].vehicles += v; hours[h].people += q;
    sum.v += v; sum.vi += p.vehicles.in; sum.vo += p.vehicles.out; sum.p += q; sum.pi += p.people.in; sum.po += p.people.out;
    sum.pl += p.plates_read; sum.al += p.alerts;
  }
  const tot = $("chart-totals");
  tot.textContent = t("totals", sum.v, sum.vi, sum.vo, sum.p, sum.pi, sum.po, sum.pl, sum.al);
  Object.assign(tot.dataset, { vehicles: sum.v, people: sum.p, vehiclesIn: sum.vi, vehiclesOut: sum.vo, plates: sum.pl, alerts: sum.al });
  drawChart(hours);
}

function svg(tag, attrs, ...children) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

function drawChart(hours) {
  const W = 480, H = 170, left = 26, bottom = 150, top = 10, slot = (W - left) / 24;
  const max = Math.max(1, ...hours.map((h) => Math.max(h.vehicles, h.people)));
  const y = (n) => bottom - (bottom - top) * n / max;
  const parts = [svg("line", { x1: left, y1: bottom, x2: W, y2: bottom, class: "axis" }), svg("text", { x: left - 4, y: top + 8, class: "tick", "text-anchor": "end" }, String(max))];
  hours.forEach((h, i) => {
    const x = left + i * slot;
    const bars = [["vehicles", h.vehicles, x + 2], ["people", h.people, x + slot / 2]].map(([k, n, bx]) =>
      svg("rect", { class: "bar " + k, x: bx, y: y(n), width: slot / 2 - 2, height: bottom - y(n) }));
    const tip = svg("title", {}, `${t("hour", i)}: ${t("vehicles")} ${h.vehicles} · ${t("people")} ${h.people}`);
    parts.push(svg("g", { class: "hour", "data-hour": i, "data-vehicles": h.vehicles, "data-people": h.people }, tip, ...bars));
    if (i % 3 === 0) parts.push(svg("text", { x: x + slot / 2, y: H - 4, class: "tick", "text-anchor": "middle" }, String(i)));
  });
  $("chart-svg").replaceChildren(...parts);
}

function chartSoon() {
  if ($("chart").hidden || state.chartTimer) return;
  state.chartTimer = setTimeout(() => { state.chartTimer = null; loadChart(); }, 2000);
}

// History search: passings within retention, newest first, a page at a time.
function passingRow(p) {
  const img = p.snapshot ? el("img", { alt: "", loading: "lazy", src: "/snapshots/" + p.snapshot.id }) : el("div", { class: "snap-placeholder" }, t("no_picture"));
  if (p.snapshot) img.addEventListener("error", () => img.replaceWith(el("div", { class: "snap-placeholder" }, t("no_picture"))), { once: true });
  const dir = t(p.direction || "no_line");
  return el("li", { class: "item passing " + p.type, "data-id": p.id, "data-plate": p.plate ? p.plate.text : "" },
    img,
    el("div", { class: "body" },
      el("div", { class: "head" }, p.type === "vehicle" ? plateTag(p.plate) : el("strong", {}, t("person")), el("span", { class: "tag" }, dir)),
      el("div", { class: "meta" }, `${camName(p.camera)} · ${t(p.label)} · ${when(p.ts)}`)));
}

async function search(more) {
  const q = new URLSearchParams();
  for (const [k, id] of [["plate", "s-plate"], ["camera", "s-camera"], ["type", "s-type"], ["direction", "s-direction"]]) if ($(id).value) q.set(k, $(id).value.trim());
  for (const [k, id] of [["from", "s-from"], ["to", "s-to"]]) if ($(id).value) q.set(k, new Date($(id).value).toISOString());
  if (more && state.next) q.set("after", state.next);
  const r = await fetch("/api/history?" + q);
  if (!r.ok) { $("s-summary").textContent = t("search_failed"); return; }
  const page = await r.json();
  if (!more) $("s-results").replaceChildren();
  $("s-results").append(...page.items.map(passingRow));
  $("s-summary").textContent = t("results", page.total);
  $("s-summary").dataset.total = page.total;
  state.next = page.next;
  $("s-more").hidden = !page.next;
}

function outcomeLabel(id) {
  const o = ((state.me && state.me.outcomes) || []).find((x) => x.id === id);
  return o ? (state.lang === "zh" ? o.zh : o.en) : id;
}

async function dispose(id, outcome, note) {
  const r = await fetch(`/api/alerts/${id}/dispose`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ outcome, note }) });
  if (r.ok) {
    const ack = await r.json();
    handle({ type: "ack", alert: id, ack }, false);
  }
}

async function loadAudit() {
  const r = await fetch("/api/audit");
  if (!r.ok) return;
  const { entries } = await r.json();
  $("audit-rows").replaceChildren(...entries.map((e) => el("tr", { "data-alert": e.alert }, el("td", {}, when(e.at)), el("td", {}, e.by), el("td", {}, `${e.rule} (${e.alert.slice(0, 8)})${e.outcome ? " · " + outcomeLabel(e.outcome) : ""}`), el("td", {}, camName(e.camera)))));
}

async function loadRecent() {
  const r = await fetch("/api/recent");
  if (r.status === 401) { location.href = "/login"; return; }
  const { items } = await r.json();
  $("feed").replaceChildren();
  state.items = [];
  for (const item of items) handle(item, false);
  showOpen();
}

function connect() {
  const es = new EventSource("/api/stream");
  es.onopen = () => $("link").classList.add("on");
  es.onmessage = (m) => { try { handle(JSON.parse(m.data), true); } catch (_) { /* ignore a bad line */ } };
  es.onerror = () => {
    $("link").classList.remove("on");
    // The session may have expired: check before the browser retries.
    fetch("/api/me").then((r) => { if (r.status === 401) { es.close(); location.href = "/login"; } });
  };
}

// The live view: the camera's latest analysed frame with what the agent sees drawn on it, about one a
// second while the panel is open (and nothing asked for, or drawn, while it is closed).
async function liveLoop() {
  if (state.liveRunning) return;
  state.liveRunning = true;
  while (!$("live").hidden) {
    const cam = $("l-camera").value;
    if (cam) {
      const url = "/api/live/" + encodeURIComponent(cam);
      const loaded = await new Promise((ok) => {
        const probe = new Image();
        probe.onload = () => ok(probe);
        probe.onerror = () => ok(null);
        probe.src = url + "?t=" + Date.now();
      });
      if (loaded) {
        // The picture just loaded takes the old one's place (setting its address again would fetch again).
        Object.assign(loaded, { id: "live-img", className: "live", alt: "" });
        loaded.dataset.camera = cam;
        $("live-img").replaceWith(loaded);
        $("live-error").textContent = "";
      } else {
        // Ask again for the reason, in words.
        const r = await fetch(url).catch(() => null);
        $("live-error").textContent = r && !r.ok ? ((await r.json().catch(() => ({}))).error || r.statusText) : "";
      }
    }
    await new Promise((ok) => setTimeout(ok, 700));
  }
  state.liveRunning = false;
}

// Set-up by sight (admins): lines, zones and masks drawn on a frozen frame, saved to the config file.
const setup = { version: null, camera: null, geometry: { lines: [], zones: [], masks: [] }, tool: null, draft: [] };

function setupHint(key) { $("g-hint").textContent = key ? t(key) : ""; }

async function loadSetup() {
  const cam = $("g-camera").value;
  if (!cam) return;
  const r = await fetch("/api/config/cameras/" + encodeURIComponent(cam));
  const body = await r.json().catch(() => ({}));
  if (!r.ok) { $("g-result").textContent = body.error || r.statusText; return; }
  Object.assign(setup, { version: body.version, camera: cam, geometry: body.geometry, tool: null, draft: [] });
  $("g-frame").src = "/api/frame/" + encodeURIComponent(cam) + "?t=" + Date.now();
  renderSetup();
}

function drawSetup() {
  const img = $("g-frame"), c = $("g-canvas");
  c.width = img.clientWidth; c.height = img.clientHeight;
  const g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  const px = (p) => [p[0] * c.width, p[1] * c.height];
  const path = (ps, close) => { g.beginPath(); ps.map(px).forEach(([x, y], i) => (i ? g.lineTo(x, y) : g.moveTo(x, y))); if (close) g.closePath(); g.stroke(); };
  g.lineWidth = 3;
  for (const m of setup.geometry.masks) { g.strokeStyle = "#c800c8"; g.fillStyle = "rgba(0,0,0,0.45)"; path(m, true); g.fill(); }
  for (const z of setup.geometry.zones) { g.strokeStyle = "#00c8ff"; path(z.points, true); }
  for (const l of setup.geometry.lines) {
    g.strokeStyle = "#ffe600"; path(l.points, false);
    g.strokeStyle = "#28dc50"; path([[(l.points[0][0] + l.points[1][0]) / 2, (l.points[0][1] + l.points[1][1]) / 2], l.in_side], false);
  }
  if (setup.draft.length) { g.strokeStyle = "#ffffff"; g.setLineDash([6, 4]); path(setup.draft, false); g.setLineDash([]); }
}

function renderSetup() {
  const items = $("g-items");
  items.textContent = "";
  for (const [kind, list] of [["line", setup.geometry.lines], ["zone", setup.geometry.zones], ["mask", setup.geometry.masks]]) {
    list.forEach((item, i) => items.append(el("li", { "data-kind": kind, "data-id": item.id || String(i) }, `${t(kind)} ${item.id || i + 1} `,
      el("button", { type: "button", class: "remove", onclick: () => { list.splice(i, 1); renderSetup(); } }, t("remove")))));
  }
  drawSetup();
}

function onSetupClick(e) {
  if (!setup.tool) return;
  const c = $("g-canvas"), r = c.getBoundingClientRect();
  const p = [Math.min(Math.max((e.clientX - r.left) / r.width, 0), 1), Math.min(Math.max((e.clientY - r.top) / r.height, 0), 1)];
  const id = $("g-id").value.trim() || setup.tool + (setup.geometry.lines.length + 1);
  setup.draft.push(p);
  if (setup.tool === "line" && setup.draft.length === 2) setupHint("hint_in");
  if (setup.tool === "line" && setup.draft.length === 3) {
    const [a, b, inSide] = setup.draft;
    setup.geometry.lines = setup.geometry.lines.filter((l) => l.id !== id);
    setup.geometry.lines.push({ id, points: [a, b], in_side: inSide });
    Object.assign(setup, { tool: null, draft: [] });
    setupHint(null);
    renderSetup();
    return;
  }
  drawSetup();
}

function finishPolygon() {
  if ((setup.tool !== "zone" && setup.tool !== "mask") || setup.draft.length < 3) return;
  if (setup.tool === "zone") {
    const id = $("g-id").value.trim() || "zone" + (setup.geometry.zones.length + 1);
    setup.geometry.zones = setup.geometry.zones.filter((z) => z.id !== id);
    setup.geometry.zones.push({ id, points: setup.draft });
  } else setup.geometry.masks.push(setup.draft);
  Object.assign(setup, { tool: null, draft: [] });
  setupHint(null);
  renderSetup();
}

async function saveSetup() {
  const r = await fetch(`/api/config/cameras/${encodeURIComponent(setup.camera)}/geometry`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ version: setup.version, ...setup.geometry }),
  });
  const body = await r.json().catch(() => ({}));
  $("g-result").textContent = r.ok ? t(body.applied ? "saved" : "saved_not_applied") : (body.issues || [body.error]).join("；");
  $("g-result").dataset.ok = r.ok && body.applied ? "1" : "0";
  if (r.ok) loadSetup();
}

async function testCamera() {
  $("c-result").textContent = t("testing");
  $("c-result").dataset.ok = "";
  $("c-picture").hidden = true;
  const r = await fetch("/api/cameras/test", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ url: $("c-url").value }) });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) { $("c-result").textContent = body.error || r.statusText; $("c-result").dataset.ok = "0"; return; }
  $("c-result").textContent = body.ok ? t("test_ok", body) : t("test_failed", body.kind, body.reason);
  $("c-result").dataset.ok = body.ok ? "1" : "0";
  if (body.ok) { $("c-picture").src = body.picture; $("c-picture").hidden = false; }
}

async function saveCamera(e) {
  e.preventDefault();
  const cfg = await (await fetch("/api/config")).json();
  const r = await fetch("/api/cameras", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ version: cfg.version, id: $("c-id").value.trim(), name: $("c-name").value.trim() || null, url: $("c-url").value.trim() }),
  });
  const body = await r.json().catch(() => ({}));
  $("c-result").textContent = r.ok ? t(body.applied ? "saved" : "saved_not_applied") : (body.issues || [body.error]).join("；");
  if (r.ok) $("c-url").value = "";
}

function wireSetup() {
  $("show-setup").hidden = !(state.me && state.me.role === "admin");
  $("show-setup").addEventListener("click", () => { $("setup").hidden = !$("setup").hidden; if (!$("setup").hidden) loadSetup(); });
  $("g-camera").addEventListener("change", loadSetup);
  $("g-freeze").addEventListener("click", loadSetup);
  $("g-frame").addEventListener("load", drawSetup);
  window.addEventListener("resize", drawSetup);
  $("g-canvas").addEventListener("click", onSetupClick);
  for (const b of document.querySelectorAll("[data-tool]")) b.addEventListener("click", () => {
    Object.assign(setup, { tool: b.dataset.tool, draft: [] });
    setupHint(b.dataset.tool === "line" ? "hint_line" : "hint_poly");
    drawSetup();
  });
  $("g-finish").addEventListener("click", finishPolygon);
  $("g-save").addEventListener("click", saveSetup);
  $("c-test").addEventListener("click", testCamera);
  $("c-form").addEventListener("submit", saveCamera);
}

async function start() {
  const r = await fetch("/api/me");
  if (r.status === 401) { location.href = "/login"; return; }
  state.me = await r.json();
  state.lang = localStorage.getItem("lang") || state.me.language || "zh";
  $("site").textContent = state.me.site || "";
  $("user").textContent = `${state.me.user} (${t(state.me.role)})`;
  translatePage();
  $("lang").addEventListener("click", () => { state.lang = state.lang === "zh" ? "en" : "zh"; localStorage.setItem("lang", state.lang); translatePage(); loadRecent(); if (!$("chart").hidden) loadChart(); });
  $("sound").addEventListener("click", () => { state.sound = !state.sound; if (state.sound) beep(); translatePage(); });
  // The banner shows the open alerts: a click lists them.
  $("banner").addEventListener("click", () => { $("f-type").value = "alert"; for (const li of $("feed").children) li.hidden = !visible(li); });
  $("show-chart").addEventListener("click", () => { $("chart").hidden = !$("chart").hidden; if (!$("chart").hidden) loadChart(); });
  setInterval(() => { if (!$("chart").hidden) loadChart(); }, 60000);
  $("show-search").addEventListener("click", () => { $("search").hidden = !$("search").hidden; });
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); search(false); });
  $("s-more").addEventListener("click", () => search(true));
  for (const f of ["f-camera", "f-type"]) $(f).addEventListener("change", () => { for (const li of $("feed").children) li.hidden = !visible(li); });
  for (const k of ["camera_offline", "camera_frozen", "camera_covered", "camera_moved"]) addOption($("m-rule"), k, t(k));
  $("mute-form").addEventListener("submit", (e) => { e.preventDefault(); mute($("m-rule").value, $("m-camera").value, Number($("m-minutes").value)); });
  $("show-audit").addEventListener("click", () => { $("audit").hidden = !$("audit").hidden; if (!$("audit").hidden) loadAudit(); });
  $("show-live").hidden = !operates();
  $("show-live").addEventListener("click", () => { $("live").hidden = !$("live").hidden; if (!$("live").hidden) liveLoop(); });
  wireSetup();
  await loadRecent();
  connect();
}

document.addEventListener("DOMContentLoaded", start);
