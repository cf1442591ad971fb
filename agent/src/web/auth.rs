//! Signing in and out, and the first-run set-up of the first operator account. Both go through the
//! guessing limits of [`super::guard`]; the log never names the account of a failed sign-in (often a
//! mistyped password), only counts and addresses (in the audit log, per minute).

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use chrono::Utc;
use serde::Deserialize;

use super::audit::{AuditAction, AuditRecord};
use super::device;
use super::guard::Attempt;
use super::users::{Role, UsersFile};
use super::{SetupRefused, WebState};

/// The account name the set-up page counts its failures under.
const SETUP_ACCOUNT: &str = "#set-up";

/// `429` with `Retry-After`, for a blocked address or account or no free check slot.
fn too_many(retry_after: Duration) -> Response {
    let secs = retry_after.as_secs().max(1);
    let mut r = (StatusCode::TOO_MANY_REQUESTS, format!("too many attempts: try again in {secs} s\n")).into_response();
    if let Ok(v) = header::HeaderValue::from_str(&secs.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

#[derive(Deserialize)]
pub(super) struct LoginQuery {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    lang: Option<String>,
}

pub(super) async fn login_page(State(s): State<WebState>, Query(q): Query<LoginQuery>) -> Response {
    let en = q.lang.as_deref().unwrap_or(&s.language) == "en";
    let t = |zh: &'static str, en_text: &'static str| if en { en_text } else { zh };
    let error =
        if q.error.is_some() { format!("<p class=\"error\" id=\"login-error\">{}</p>", t("用户名或密码错误", "Wrong user name or password")) } else { String::new() };
    let setup = if s.setup_open() {
        format!("<p><a href=\"/setup{}\">{}</a></p>", if en { "?lang=en" } else { "" }, t("首次使用：创建值班账号", "First use: create the duty account"))
    } else {
        String::new()
    };
    let body = format!(
        include_str!("assets/login.html"),
        site = html_escape(&s.site_name),
        user = t("用户名", "User name"),
        password = t("密码", "Password"),
        submit = t("登录", "Sign in"),
        error = error,
        setup = setup,
        switch = if en { "<a href=\"/login\">中文</a>" } else { "<a href=\"/login?lang=en\">English</a>" },
    );
    card_page(en, t("卡口值班台 · 登录", "Checkpoint duty desk · Sign in"), &body)
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    user: String,
    password: String,
}

pub(super) async fn login(State(s): State<WebState>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap, Form(f): Form<LoginForm>) -> Response {
    let address = peer.ip();
    let name = f.user.trim().to_string();
    // A browser that signed in to this account before is limited by its own failures only.
    let device = device::presented(&s.devices, &headers, &name);
    let attempt = Attempt { address, account: &name, device: device.as_ref() };
    if let Err(wait) = s.guard.admit(attempt) {
        return too_many(wait);
    }
    let Some(_slot) = s.guard.slot().await else { return too_many(Duration::from_secs(1)) };
    // Blocked meanwhile by the attempts that held the slots before this one.
    if let Err(wait) = s.guard.admit(attempt) {
        return too_many(wait);
    }
    let path = s.users_file.clone();
    let (account, password) = (name.clone(), f.password);
    let checked = tokio::task::spawn_blocking(move || UsersFile::load(&path).map(|u| u.check(&account, &password).cloned())).await;
    match checked {
        Ok(Ok(Some(user))) => {
            s.guard.succeeded(attempt);
            let token = s.sessions.start(&user, s.session_ttl);
            tracing::info!(user = %user.name, role = user.role.as_str(), address = %address, recognised_browser = device.is_some(), "duty desk sign-in");
            let mut record = AuditRecord::new(AuditAction::SignIn, Utc::now());
            record.by = Some(user.name.clone());
            record.role = Some(user.role.as_str().to_string());
            record.address = Some(address.to_string());
            s.audit(record).await;
            let mut r = Redirect::to("/").into_response();
            let cookies = [Some(s.cookie(&token, s.session_ttl.as_secs())), s.devices.issue(&user.name).map(|d| device::set_cookie(&user.name, &d, s.tls))];
            for cookie in cookies.into_iter().flatten() {
                if let Ok(v) = header::HeaderValue::from_str(&cookie) {
                    r.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            r
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot read the users file");
            Redirect::to("/login?error=1").into_response()
        }
        _ => {
            if let Some(failures) = s.guard.failed(attempt) {
                report_attack(&s, &name, address, failures).await;
            }
            tracing::debug!(address = %address, "duty desk sign-in failed");
            Redirect::to("/login?error=1").into_response()
        }
    }
}

/// Repeated failures on one account from browsers it does not know: logged without the account's name,
/// and audited with it when it is a real account (a password typed into the name field is not).
async fn report_attack(s: &WebState, name: &str, address: std::net::IpAddr, failures: u32) {
    tracing::warn!(
        address = %address,
        failures,
        "duty desk: repeated failed sign-ins on one account: browsers that never signed in to it are kept out of it for a while; those that did can still sign in"
    );
    let path = s.users_file.clone();
    let account = name.to_string();
    let exists = tokio::task::spawn_blocking(move || UsersFile::load(&path).is_ok_and(|u| u.users.iter().any(|x| x.name == account))).await.unwrap_or(false);
    let mut record = AuditRecord::new(AuditAction::SignInBlocked, Utc::now());
    record.by = exists.then(|| name.to_string());
    record.address = Some(address.to_string());
    record.count = Some(u64::from(failures));
    s.audit(record).await;
}

pub(super) async fn logout(State(s): State<WebState>, headers: HeaderMap) -> Response {
    if let Some(session) = WebState::token(&headers).and_then(|t| s.sessions.end(&t)) {
        let mut record = AuditRecord::new(AuditAction::SignOut, Utc::now());
        record.by = Some(session.user);
        s.audit(record).await;
    }
    let mut r = Redirect::to("/login").into_response();
    if let Ok(v) = header::HeaderValue::from_str(&s.cookie("", 0)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

pub(super) async fn setup_page(State(s): State<WebState>, Query(q): Query<LoginQuery>) -> Response {
    if !s.setup_open() {
        return Redirect::to("/login").into_response();
    }
    let en = q.lang.as_deref().unwrap_or(&s.language) == "en";
    let t = |zh: &'static str, en_text: &'static str| if en { en_text } else { zh };
    let error = if q.error.is_some() {
        format!("<p class=\"error\">{}</p>", t("设置码错误、用户名无效或密码少于 8 位", "Wrong set-up code, invalid name, or password under 8 characters"))
    } else {
        String::new()
    };
    let body = format!(
        include_str!("assets/setup.html"),
        hint = {
            let file = html_escape(&s.setup_code_file.display().to_string());
            if en {
                format!("The set-up code is in the file {file} on this PC, readable by root: <code>sudo cat {file}</code>. It is valid for 24 hours.")
            } else {
                format!("设置码在本机文件 {file} 中（需 root 权限：<code>sudo cat {file}</code>），24 小时内有效。")
            }
        },
        code = t("设置码", "Set-up code"),
        user = t("用户名", "User name"),
        password = t("密码（至少 8 位）", "Password (8+ characters)"),
        submit = t("创建", "Create"),
        error = error,
    );
    card_page(en, t("创建值班账号", "Create the duty account"), &body)
}

#[derive(Deserialize)]
pub(super) struct SetupForm {
    code: String,
    user: String,
    password: String,
}

pub(super) async fn setup(State(s): State<WebState>, ConnectInfo(peer): ConnectInfo<SocketAddr>, Form(f): Form<SetupForm>) -> Response {
    let address = peer.ip();
    let attempt = Attempt { address, account: SETUP_ACCOUNT, device: None };
    if let Err(wait) = s.guard.admit(attempt) {
        return too_many(wait);
    }
    match s.check_setup_code(&f.code) {
        Ok(()) => {}
        Err(SetupRefused::Closed) => return Redirect::to("/login").into_response(),
        Err(refused) => {
            s.guard.failed(attempt);
            if refused == SetupRefused::Locked {
                let mut record = AuditRecord::new(AuditAction::SetUpLocked, Utc::now());
                record.address = Some(address.to_string());
                s.audit(record).await;
                return Redirect::to("/login").into_response();
            }
            return Redirect::to("/setup?error=1").into_response();
        }
    }
    let Some(_slot) = s.guard.slot().await else { return too_many(Duration::from_secs(1)) };
    let path = s.users_file.clone();
    let name = f.user.trim().to_string();
    let account = name.clone();
    let created = tokio::task::spawn_blocking(move || {
        let mut file = UsersFile::load(&path)?;
        if !file.users.is_empty() {
            return Ok(false);
        }
        file.set(&account, Role::Operator, &f.password)?;
        file.save(&path).map(|()| true)
    })
    .await;
    match created {
        Ok(Ok(true)) => {
            *s.setup_code.lock().unwrap_or_else(|p| p.into_inner()) = None;
            let _ = std::fs::remove_file(&s.setup_code_file);
            tracing::info!(user = %name, "duty desk: first operator account created through the set-up page");
            let mut record = AuditRecord::new(AuditAction::SetUp, Utc::now());
            record.by = Some(name);
            record.role = Some(Role::Operator.as_str().to_string());
            record.address = Some(address.to_string());
            s.audit(record).await;
            Redirect::to("/login").into_response()
        }
        Ok(Ok(false)) => Redirect::to("/login").into_response(),
        _ => Redirect::to("/setup?error=1").into_response(),
    }
}

/// A small page (sign-in, set-up) around `body`.
fn card_page(en: bool, title: &str, body: &str) -> Response {
    let page = format!(include_str!("assets/page.html"), lang = if en { "en" } else { "zh-CN" }, title = title, body = body);
    Html(page).into_response()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
