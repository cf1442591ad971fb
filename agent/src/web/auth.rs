//! Signing in and out, and the first-run set-up of the first operator account.

use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::users::{Role, UsersFile};
use super::{random_token, security_headers, Session, WebState};

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
    let setup = if s.setup_code.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
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

pub(super) async fn login(State(s): State<WebState>, Form(f): Form<LoginForm>) -> Response {
    let path = s.users_file.clone();
    let (name, password) = (f.user.clone(), f.password);
    let checked = tokio::task::spawn_blocking(move || UsersFile::load(&path).map(|u| u.check(&name, &password).map(|u| (u.name.clone(), u.role)))).await;
    match checked {
        Ok(Ok(Some((user, role)))) => {
            let token = random_token(32);
            s.sessions.lock().unwrap_or_else(|p| p.into_inner()).insert(token.clone(), Session { user: user.clone(), role, expires: Instant::now() + s.session_ttl });
            tracing::info!(user = %user, role = role.as_str(), "duty desk sign-in");
            let mut r = Redirect::to("/").into_response();
            if let Ok(v) = header::HeaderValue::from_str(&s.cookie(&token, s.session_ttl.as_secs())) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot read the users file");
            Redirect::to("/login?error=1").into_response()
        }
        _ => {
            tracing::warn!(user = %f.user.chars().take(32).collect::<String>(), "duty desk sign-in failed");
            // Slows down guessing.
            tokio::time::sleep(Duration::from_millis(700)).await;
            Redirect::to("/login?error=1").into_response()
        }
    }
}

pub(super) async fn logout(State(s): State<WebState>, headers: HeaderMap) -> Response {
    if let Some(session) = s.session(&headers) {
        s.sessions.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, v| !(v.user == session.user && v.expires == session.expires));
    }
    let mut r = Redirect::to("/login").into_response();
    if let Ok(v) = header::HeaderValue::from_str(&s.cookie("", 0)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

pub(super) async fn setup_page(State(s): State<WebState>, Query(q): Query<LoginQuery>) -> Response {
    if s.setup_code.lock().unwrap_or_else(|p| p.into_inner()).is_none() {
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
        hint = t("设置码在本机日志中（journalctl -u edge-agent）。", "The set-up code is in this PC's log (journalctl -u edge-agent)."),
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

pub(super) async fn setup(State(s): State<WebState>, Form(f): Form<SetupForm>) -> Response {
    let expected = s.setup_code.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let Some(expected) = expected else { return Redirect::to("/login").into_response() };
    if f.code.trim() != expected {
        tokio::time::sleep(Duration::from_millis(700)).await;
        return Redirect::to("/setup?error=1").into_response();
    }
    let path = s.users_file.clone();
    let created = tokio::task::spawn_blocking(move || {
        let mut file = UsersFile::load(&path)?;
        if !file.users.is_empty() {
            return Ok(false);
        }
        file.set(f.user.trim(), Role::Operator, &f.password)?;
        file.save(&path).map(|()| true)
    })
    .await;
    match created {
        Ok(Ok(true)) => {
            *s.setup_code.lock().unwrap_or_else(|p| p.into_inner()) = None;
            tracing::info!("duty desk: first operator account created through the set-up page");
            Redirect::to("/login").into_response()
        }
        Ok(Ok(false)) => Redirect::to("/login").into_response(),
        _ => Redirect::to("/setup?error=1").into_response(),
    }
}

/// A small page (sign-in, set-up) around `body`.
fn card_page(en: bool, title: &str, body: &str) -> Response {
    let page = format!(include_str!("assets/page.html"), lang = if en { "en" } else { "zh-CN" }, title = title, body = body);
    security_headers(Html(page).into_response())
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
