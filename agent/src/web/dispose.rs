//! Disposing of an alert: duty staff (or the platform, with the `dispose_alert` command) record what was
//! done — an outcome from a fixed, configurable list and a short note. The disposition goes to the audit log,
//! to the platform on `{prefix}/{site}/{camera}/dispositions` through the outbox, and to every open page.

use std::sync::Arc;

use chrono::Utc;
use edge_config::Outcome;

use super::audit::{AuditAction, AuditLog, AuditRecord, Disposal};
use super::feed::{Ack, Feed};
use super::users::Role;
use crate::outbox::{Kind, Message, OutboxHandle};
use crate::payload::{Disposition, DispositionSource, DISPOSITION_SCHEMA};
use crate::topics::Topics;

/// Who disposes of an alert.
#[derive(Debug, Clone, Copy)]
pub enum DisposedBy<'a> {
    /// An account signed in to the duty desk.
    Desk { user: &'a str, role: Role },
    /// The platform (`dispose_alert`), naming the person there when it does.
    Platform { by: &'a str },
}

impl DisposedBy<'_> {
    fn name(&self) -> &str {
        match self {
            DisposedBy::Desk { user, .. } => user,
            DisposedBy::Platform { by } => by,
        }
    }

    fn role(&self) -> &'static str {
        match self {
            DisposedBy::Desk { role, .. } => role.as_str(),
            DisposedBy::Platform { .. } => "platform",
        }
    }

    fn source(&self) -> DispositionSource {
        match self {
            DisposedBy::Desk { .. } => DispositionSource::Village,
            DisposedBy::Platform { .. } => DispositionSource::Platform,
        }
    }
}

/// Why a disposition was not recorded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DisposeError {
    #[error("no such alert {0:?} in the duty desk's recent list")]
    NoSuchAlert(String),
    #[error("unknown outcome {0:?}")]
    UnknownOutcome(String),
    #[error("the note is at most 200 characters, on one line")]
    BadNote,
    #[error("the audit log is not writable")]
    Audit,
}

/// Records dispositions; shared by the page and the command handler.
pub struct Disposer {
    pub feed: Feed,
    pub audit: Arc<AuditLog>,
    pub outbox: Option<OutboxHandle>,
    pub topics: Topics,
    pub site: String,
    pub outcomes: Vec<Outcome>,
}

impl Disposer {
    /// Disposes of `alert_id`; an alert already disposed of keeps its first disposition (returned).
    pub async fn dispose(&self, alert_id: &str, outcome: &str, note: Option<&str>, who: DisposedBy<'_>) -> Result<Ack, DisposeError> {
        let (by, source) = (who.name(), who.source());
        let (alert, existing) = self.feed.alert(alert_id).ok_or_else(|| DisposeError::NoSuchAlert(alert_id.to_string()))?;
        if let Some(ack) = existing {
            return Ok(ack);
        }
        let outcome = self.outcomes.iter().find(|o| o.id == outcome).ok_or_else(|| DisposeError::UnknownOutcome(outcome.to_string()))?;
        let note = note.map(str::trim).filter(|n| !n.is_empty());
        if note.is_some_and(|n| n.chars().count() > 200 || n.chars().any(char::is_control)) {
            return Err(DisposeError::BadNote);
        }
        let now = Utc::now();
        let at = crate::payload::timestamp(now);
        let camera = alert.camera.clone();
        let mut record = AuditRecord::new(AuditAction::Dispose, now);
        record.alert = Some(alert_id.to_string());
        record.rule = Some(alert.rule.clone());
        record.camera = Some(camera.clone());
        record.by = Some(by.to_string());
        record.role = Some(who.role().to_string());
        let disposal = Disposal { outcome: Some(outcome.id.clone()), note: note.map(str::to_string), source: Some(source) };
        record.disposal = disposal.clone();
        record.at = at.clone();
        let audit = self.audit.clone();
        if !matches!(tokio::task::spawn_blocking(move || audit.append(record)).await, Ok(Ok(()))) {
            return Err(DisposeError::Audit);
        }
        let disposition = Disposition {
            schema: DISPOSITION_SCHEMA,
            id: uuid::Uuid::now_v7().to_string(),
            site: self.site.clone(),
            camera: camera.clone(),
            alert_id: alert_id.to_string(),
            event_id: alert.event_id.clone(),
            rule: Some(alert.rule.clone()),
            outcome: outcome.id.clone(),
            outcome_label: outcome.zh.clone(),
            note: note.map(str::to_string),
            by: by.to_string(),
            role: who.role(),
            source,
            at: at.clone(),
        };
        if let (Some(outbox), Ok(bytes)) = (&self.outbox, serde_json::to_vec(&disposition)) {
            if let Err(rejected) = outbox.append(Message::new(Kind::Disposition, self.topics.dispositions(&camera), bytes)) {
                tracing::error!(alert = %alert_id, error = %rejected.reason, "disposition not queued");
            }
        }
        tracing::info!(alert = %alert_id, outcome = %outcome.id, by, source = source.as_str(), "alert disposed of");
        let ack = Ack { by: by.to_string(), at, disposal };
        self.feed.acknowledge(alert_id, &ack);
        Ok(ack)
    }
}
