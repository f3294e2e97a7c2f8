//! Register, log in, log out.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::anonymous_layout;
use super::extract::{Form, Path};
use crate::auth::{AuthSession, Credentials, User, keys};
use crate::chat;
use crate::chat::admin::Registration;
use crate::db;
use crate::domain::{FieldErrors, Password, Username};
use crate::error::{AppError, AppResult, is_local_path};
use crate::state::AppState;
use crate::views::admin::ResetPage;
use crate::views::{LoginPage, RegisterPage, render};

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(new_login).post(create_login))
        .route("/register", get(new_registration).post(create_registration))
        .route("/logout", post(destroy))
        .route("/reset/{token}", get(new_reset).post(create_reset))
}

/// The client's IP for rate limits: the socket peer, or the last `X-Forwarded-For` hop when
/// configured to trust a reverse proxy.
fn client_ip(state: &AppState, peer: Option<SocketAddr>, headers: &HeaderMap) -> String {
    let forwarded = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .map(str::trim)
        .filter(|s| !s.is_empty());
    if let (true, Some(ip)) = (state.config.trust_proxy, forwarded) {
        return ip.to_owned();
    }
    peer.map(|p| p.ip().to_string()).unwrap_or_default()
}

fn too_many_login(username: String, next: String) -> Response {
    render(
        StatusCode::TOO_MANY_REQUESTS,
        &LoginPage {
            layout: anonymous_layout(),
            username,
            next,
            errors: FieldErrors::one("form", "Too many attempts. Wait a minute, then try again."),
        },
    )
}

/// Logs `user` into this browser with a fresh session id, and records the login.
pub async fn start_login(auth: &mut AuthSession, user: &User) -> AppResult<()> {
    // A new session id at every login, also when someone was logged in here already.
    auth.session
        .cycle_id()
        .await
        .map_err(|e| anyhow::anyhow!("session: {e}"))?;
    auth.login(user)
        .await
        .map_err(|e| anyhow::anyhow!("login: {e}"))?;
    let now = db::now_ms();
    let login_id: u64 = rand::random();
    for (k, v) in [
        (keys::LOGIN_AT, serde_json::json!(now)),
        (keys::TOUCHED_AT, serde_json::json!(now)),
        (keys::LOGIN_ID, serde_json::json!(login_id)),
    ] {
        auth.session
            .insert(k, v)
            .await
            .map_err(|e| anyhow::anyhow!("session: {e}"))?;
    }
    Ok(())
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

// GET /login
async fn new_login(auth: AuthSession, Query(q): Query<NextQuery>) -> Response {
    if auth.user.is_some() {
        return Redirect::to("/").into_response();
    }
    render(
        StatusCode::OK,
        &LoginPage {
            layout: anonymous_layout(),
            username: String::new(),
            next: q.next.filter(|n| is_local_path(n)).unwrap_or_default(),
            errors: FieldErrors::default(),
        },
    )
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

// POST /login
#[tracing::instrument(skip_all)]
async fn create_login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    mut auth: AuthSession,
    Form(form): Form<LoginForm>,
) -> AppResult<Response> {
    let next = if is_local_path(&form.next) {
        form.next.clone()
    } else {
        String::new()
    };
    let typed = form.username.trim().to_owned();
    let ip = client_ip(&state, Some(peer), &headers);
    if !state.limits.allow_ip(&ip).await {
        return Ok(too_many_login(typed, next));
    }
    let username = Username::parse("username", &form.username);
    let password = Password::parse_existing("password", form.password);
    let user = match (username, password) {
        (Ok(username), Ok(password)) => {
            // Strict per (account, IP); across IPs only slowed down, so failures elsewhere never
            // lock the owner out.
            if !state.limits.allow_account(username.as_str(), &ip).await {
                return Ok(too_many_login(typed, next));
            }
            let account = username.as_str().to_owned();
            let delay = state.limits.login_delay(&account);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let user = auth
                .authenticate(Credentials { username, password })
                .await
                .map_err(|e| anyhow::anyhow!("authenticate: {e}"))?;
            match user {
                Some(_) => state.limits.login_succeeded(&account),
                None => state.limits.login_failed(&account),
            }
            user
        }
        (_, Ok(password)) => {
            // A malformed username costs a verification too: no timing difference.
            state.hasher.verify(&password, None).await?;
            None
        }
        _ => None,
    };
    let Some(user) = user else {
        return Ok(render(
            StatusCode::UNAUTHORIZED,
            &LoginPage {
                layout: anonymous_layout(),
                username: typed,
                next,
                errors: FieldErrors::one("form", "Wrong username or password."),
            },
        ));
    };
    if user.deactivated {
        // Only after the right password: a stranger learns nothing about the account.
        return Ok(render(
            StatusCode::FORBIDDEN,
            &LoginPage {
                layout: anonymous_layout(),
                username: typed,
                next,
                errors: FieldErrors::one(
                    "form",
                    "This account is deactivated. Ask the administrator of this instance.",
                ),
            },
        ));
    }
    start_login(&mut auth, &user).await?;
    let to = if next.is_empty() { "/" } else { next.as_str() };
    Ok(Redirect::to(to).into_response())
}

/// The registration page as it stands: the mode, whether this is the first account, and the
/// invite being used (None when `invite` does not work).
pub async fn register_page(
    state: &AppState,
    username: String,
    errors: FieldErrors,
    invite: Option<&str>,
) -> AppResult<RegisterPage> {
    let mut rc = state.db.read().await?;
    let first_run = db::admin::no_users(&mut rc.conn()).await?;
    let (valid, mode) = match invite {
        Some(token) => chat::admin::invite_for(&mut rc.conn(), token).await?,
        None => (None, chat::admin::registration(&mut rc.conn()).await?),
    };
    let open = first_run || valid.is_some() || mode == Registration::Open;
    Ok(RegisterPage {
        layout: anonymous_layout(),
        username,
        errors,
        first_run,
        mode: mode.as_str().to_owned(),
        open,
        invited_by: valid.as_ref().map(|i| i.creator.clone()),
        befriend: valid.as_ref().is_some_and(|i| i.befriend != 0),
        invite: valid.map(|i| i.token),
    })
}

// GET /register
async fn new_registration(State(state): State<AppState>, auth: AuthSession) -> AppResult<Response> {
    if auth.user.is_some() {
        return Ok(Redirect::to("/").into_response());
    }
    let page = register_page(&state, String::new(), FieldErrors::default(), None).await?;
    Ok(render(StatusCode::OK, &page))
}

#[derive(Deserialize)]
struct RegisterForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    /// An invite link's token.
    #[serde(default)]
    invite: String,
}

// POST /register
#[tracing::instrument(skip_all)]
async fn create_registration(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    mut auth: AuthSession,
    Form(form): Form<RegisterForm>,
) -> AppResult<Response> {
    let typed = form.username.trim().to_owned();
    let invite = Some(form.invite.trim()).filter(|t| !t.is_empty());
    let form_again = async |status: StatusCode, errors: FieldErrors| -> AppResult<Response> {
        // A refusal of the registration itself (mode, invite) is 403; a field's, 422.
        let status = if status == StatusCode::UNPROCESSABLE_ENTITY && errors.get("form").is_some() {
            StatusCode::FORBIDDEN
        } else {
            status
        };
        let page = register_page(&state, typed.clone(), errors, invite).await?;
        Ok(render(status, &page))
    };
    if !state
        .limits
        .allow_ip(&client_ip(&state, Some(peer), &headers))
        .await
    {
        return form_again(
            StatusCode::TOO_MANY_REQUESTS,
            FieldErrors::one("form", "Too many attempts. Wait a minute, then try again."),
        )
        .await;
    }
    // Someone who may not register at all hears that before anything about their fields.
    let refused = {
        let mut rc = state.db.read().await?;
        chat::admin::refusal(&mut rc.conn(), invite).await?
    };
    if let Some(why) = refused {
        return form_again(StatusCode::FORBIDDEN, FieldErrors::one("form", why)).await;
    }
    let mut errors = FieldErrors::default();
    let username = errors.check(Username::parse("username", &form.username));
    let password = errors.check(Password::parse_new(
        "password",
        form.password,
        &[form.username.trim()],
    ));
    let (Some(username), Some(password)) = (username, password) else {
        return form_again(StatusCode::UNPROCESSABLE_ENTITY, errors).await;
    };
    let row = match chat::accounts::register(&state.cx(), &username, &password, invite).await {
        Ok(row) => row,
        Err(AppError::Invalid(errors)) => {
            return form_again(StatusCode::UNPROCESSABLE_ENTITY, errors).await;
        }
        Err(e) => return Err(e),
    };
    start_login(&mut auth, &User::from(row)).await?;
    Ok(Redirect::to("/").into_response())
}

// POST /logout
async fn destroy(State(state): State<AppState>, mut auth: AuthSession) -> AppResult<Redirect> {
    let login_id: Option<u64> = auth.session.get(keys::LOGIN_ID).await.ok().flatten();
    let user = auth
        .logout()
        .await
        .map_err(|e| anyhow::anyhow!("logout: {e}"))?;
    if let (Some(user), Some(login_id)) = (user, login_id) {
        chat::accounts::logged_out(&state.cx(), user.user.id, login_id).await?;
    }
    Ok(Redirect::to("/login"))
}

// GET /reset/{token}: choose a new password (a used, expired or unknown link is a 404)
async fn new_reset(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> AppResult<Response> {
    let username = chat::admin::reset_target(&state.cx(), &token)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(render(
        StatusCode::OK,
        &ResetPage {
            layout: anonymous_layout(),
            username,
            token,
            errors: FieldErrors::default(),
        },
    ))
}

#[derive(Deserialize)]
struct ResetForm {
    #[serde(default)]
    new_password: String,
}

// POST /reset/{token}: sets the password (the usual strength rules), ends every session of the
// account, and logs this browser in
#[tracing::instrument(skip_all)]
async fn create_reset(
    State(state): State<AppState>,
    mut auth: AuthSession,
    Path(token): Path<String>,
    Form(form): Form<ResetForm>,
) -> AppResult<Response> {
    let username = chat::admin::reset_target(&state.cx(), &token)
        .await?
        .ok_or(AppError::NotFound)?;
    let password = match Password::parse_new("new_password", form.new_password, &[&username]) {
        Ok(p) => p,
        Err(errors) => {
            let page = ResetPage {
                layout: anonymous_layout(),
                username,
                token,
                errors,
            };
            return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
    };
    let row = chat::admin::reset_password(&state.cx(), &token, &password)
        .await?
        .ok_or(AppError::NotFound)?;
    start_login(&mut auth, &User::from(row)).await?;
    Ok(Redirect::to("/").into_response())
}
