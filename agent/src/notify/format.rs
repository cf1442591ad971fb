//! What a notification says: the WeCom and DingTalk markdown texts, the summary of a burst, and the
//! webhook's JSON. Pure functions of the alert payload; the texts are in Chinese, as duty staff read them.

use chrono::{DateTime, Local};

use crate::payload::{Alert, HealthState};

/// WeCom's markdown `content` may be 4096 bytes; DingTalk's is similar.
pub const MAX_TEXT_BYTES: usize = 4000;
/// Alerts listed one per line in a summary; the rest are counted.
const SUMMARY_LINES: usize = 15;

/// Where the alerts come from, for the texts.
#[derive(Debug, Clone)]
pub struct Context {
    /// The checkpoint's name (`site.name`), or its id.
    pub checkpoint: String,
    /// Camera display names by id.
    pub cameras: std::collections::HashMap<String, String>,
}

impl Context {
    fn camera<'a>(&'a self, id: &'a str) -> &'a str {
        self.cameras.get(id).map_or(id, String::as_str)
    }
}

/// The alert's kind in words.
pub fn kind_label(kind: &str) -> &'static str {
    match kind {
        "watch_list" => "布控车辆",
        "key_region" => "重点地区车辆",
        "crowding" => "人员聚集",
        "after_hours" => "非通行时段",
        "camera_offline" => "摄像头离线",
        "camera_frozen" => "画面冻结",
        "camera_covered" => "画面遮挡",
        "camera_moved" => "摄像头移位",
        _ => "告警",
    }
}

fn severity_label(severity: &str) -> &'static str {
    match severity {
        "critical" => "紧急",
        "warning" => "重要",
        _ => "提示",
    }
}

fn colour_label(colour: models::plates::PlateColour) -> &'static str {
    use models::plates::PlateColour::*;
    match colour {
        Blue => "蓝牌",
        Yellow => "黄牌",
        Green => "绿牌",
        White => "白牌",
        Black => "黑牌",
        _ => "颜色未明",
    }
}

fn level_label(level: &str) -> &'static str {
    match level {
        "city" => "市级",
        "district" => "区县级",
        "town" => "乡镇级",
        "village" => "村级",
        _ => "本卡口",
    }
}

/// The alert's time, local, to the second.
fn local_time(alert: &Alert) -> String {
    DateTime::parse_from_rfc3339(&alert.ts).map_or_else(|_| alert.ts.clone(), |t| t.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S").to_string())
}

fn is_cleared(alert: &Alert) -> bool {
    alert.health.as_ref().is_some_and(|h| h.state == HealthState::Cleared)
}

/// The headline: what happened, and how urgent.
pub fn title(alert: &Alert) -> String {
    if is_cleared(alert) {
        format!("【恢复】{}已恢复", kind_label(alert.kind.as_str()))
    } else {
        format!("【{}】{}", severity_label(&alert.severity), kind_label(alert.kind.as_str()))
    }
}

/// The facts, one `> label：value` line each (markdown quote lines, which both robots render).
fn facts(alert: &Alert, ctx: &Context) -> Vec<String> {
    let mut lines = vec![format!("> 卡口：{}", ctx.checkpoint), format!("> 摄像头：{}", ctx.camera(&alert.camera)), format!("> 时间：{}", local_time(alert))];
    if let Some(p) = &alert.plate {
        let unsure = if p.uncertain_positions.is_empty() { "" } else { "（有字符不确定）" };
        lines.push(format!("> 车牌：**{}** {}{unsure}", p.text, colour_label(p.color)));
    }
    if let Some(d) = alert.direction {
        lines.push(format!("> 方向：{}", if d.as_str() == "in" { "进" } else { "出" }));
    }
    if let Some(m) = &alert.matched {
        let how = if m.distance == 0 { String::new() } else { "（一字之差）".to_string() };
        lines.push(format!("> 名单车牌：{}{how}", m.entry));
    }
    if let Some(prefix) = &alert.prefix {
        lines.push(format!("> 地区：{prefix}"));
    }
    if let (Some(zone), Some(count)) = (&alert.zone, alert.count) {
        lines.push(format!("> 区域：{zone}，{count} 人"));
    }
    if let Some(reason) = &alert.reason {
        lines.push(format!("> 原因：{reason}"));
    }
    if alert.kind.as_str() == "watch_list" || alert.level.is_some() {
        lines.push(format!("> 规则：{}（{}）", alert.rule, level_label(alert.level.as_deref().unwrap_or("local"))));
    }
    if let Some(h) = &alert.health {
        lines.push(format!("> 情况：{}", h.detail));
    }
    lines
}

/// One alert as markdown: the headline in bold, then its facts.
pub fn markdown(alert: &Alert, ctx: &Context, picture: Option<&str>) -> String {
    let colour = if is_cleared(alert) { "info" } else { "warning" };
    let mut text = format!("**<font color=\"{colour}\">{}</font>**\n{}", title(alert), facts(alert, ctx).join("\n"));
    if let Some(url) = picture {
        text.push_str(&format!("\n\n![抓拍]({url})"));
    }
    clip(text)
}

/// Several alerts in one message ("5 条告警：…"), newest last.
pub fn summary(alerts: &[Alert], ctx: &Context) -> String {
    let mut text = format!("**<font color=\"warning\">{} 条告警</font>**（{}，发送过于频繁，合并为一条）：", alerts.len(), ctx.checkpoint);
    for a in alerts.iter().take(SUMMARY_LINES) {
        let time = local_time(a);
        let plate = a.plate.as_ref().map(|p| format!(" {}", p.text)).unwrap_or_default();
        text.push_str(&format!("\n> {} {}{plate} · {}", time.get(11..).unwrap_or(&time), title(a), ctx.camera(&a.camera)));
    }
    if alerts.len() > SUMMARY_LINES {
        text.push_str(&format!("\n> …另有 {} 条，请到值班台查看", alerts.len() - SUMMARY_LINES));
    }
    clip(text)
}

/// Cuts `text` to [`MAX_TEXT_BYTES`] at a character boundary.
fn clip(mut text: String) -> String {
    if text.len() > MAX_TEXT_BYTES {
        let mut end = MAX_TEXT_BYTES - 3;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert() -> Alert {
        serde_json::from_value(serde_json::json!({
            "schema": "edge-agent/alert/v1", "id": "0193d9c0-0000-7000-8000-0000000000a1", "site": "a/b/c/d/e",
            "camera": "gate-in", "ts": "2026-11-28T08:00:02.000Z", "rule": "stolen", "kind": "watch_list", "severity": "critical",
            "event_id": null, "event_ids": [], "type": "vehicle", "label": "car", "direction": "in",
            "plate": { "text": "京PL3N67", "confidence": 0.9, "color": "blue" }, "matched": { "entry": "京PL3N67", "distance": 0, "position": null },
            "prefix": null, "zone": null, "count": null, "duration_s": null, "snapshot_topic": null, "reason": "被盗车辆", "level": "town", "policy_version": 3
        }))
        .unwrap()
    }

    #[test]
    fn an_alert_reads_with_its_plate_colour_camera_reason_and_level() {
        let ctx = Context { checkpoint: "小庄村东口".into(), cameras: [("gate-in".to_string(), "东口进".to_string())].into() };
        let text = markdown(&alert(), &ctx, None);
        for part in ["【紧急】布控车辆", "卡口：小庄村东口", "摄像头：东口进", "**京PL3N67** 蓝牌", "方向：进", "原因：被盗车辆", "规则：stolen（乡镇级）"]
        {
            assert!(text.contains(part), "{part:?} missing from {text}");
        }
        let many: Vec<Alert> = (0..20).map(|_| alert()).collect();
        let s = summary(&many, &ctx);
        assert!(s.starts_with("**<font color=\"warning\">20 条告警</font>**"), "{s}");
        assert!(s.contains("另有 5 条"), "{s}");
    }
}
