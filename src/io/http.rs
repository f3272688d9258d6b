//! HTTP: the host API (JSON, API key or host token), the embedded web client, /health and the WebSocket upgrade.
//!
//! API (all bodies JSON; errors are `{"code": "...", "message": "..."}`):
//! - `POST /api/rooms` `{"id","floor_lang"?,"channels":[{"lang","name"?}]}` (API key): create a room.
//! - `GET /api/rooms/{id}`: the room, its channels, who is live, listener counts.
//! - `DELETE /api/rooms/{id}`: delete the room, its sessions (told `ended`) and its transcript.
//! - `GET /api/rooms` (API key): every room.
//! - `POST /api/rooms/{id}/channels` `{"lang","name"?}`: add a channel; `PATCH
//!   /api/rooms/{id}/channels/{lang}` `{"name"}`: rename it.
//! - `POST /api/rooms/{id}/revoke` `{"link"}`: revoke an invitation of the room (the link or its token).
//! - `GET /api/link` (the invitation token as bearer): its room, role and expiry, or why it no
//!   longer works (pages ask when they open).
//! - `POST /api/rooms/{id}/tokens` `{"role","channel"?,"also"?,"name","ttl_secs"?,"qr"?}`: mint an
//!   invitation (with `qr`, also as a QR code in SVG).
//! - `POST /api/rooms/{id}/recording` `{"on"}`: start or stop recording the room.
//! - `GET /api/rooms/{id}/recordings`: its takes and their files; `GET .../recordings/{take}/{file}`
//!   downloads one (`floor.opus`, `es.opus`; range requests), `.../{take}/es.vtt` its source's
//!   transcript on the file's timeline; `DELETE` a take or one file. The list gives each file a
//!   signed link (`?exp=&sig=`) that downloads it for an hour without credentials.
//!
//! Authorisation is `Authorization: Bearer <API key>`, or a host token of that room for its own room.

use super::{disk, record, signal, App};
use crate::core::engine::stats::COUNTERS;
use crate::core::spec::{ChannelSpec, RoomSpec};
use crate::protocol::{Error, ErrorCode, Role, MAX_MESSAGE};
use crate::token::Claims;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

/// The web client, embedded so the binary is the whole deployment.
const WEB: &[(&str, &str, &str)] = &[
    ("index.html", "text/html; charset=utf-8", include_str!("../../web/index.html")),
    ("listen.html", "text/html; charset=utf-8", include_str!("../../web/listen.html")),
    ("interpret.html", "text/html; charset=utf-8", include_str!("../../web/interpret.html")),
    ("floor.html", "text/html; charset=utf-8", include_str!("../../web/floor.html")),
    ("host.html", "text/html; charset=utf-8", include_str!("../../web/host.html")),
    ("tolk.js", "text/javascript; charset=utf-8", include_str!("../../web/tolk.js")),
    ("chat.js", "text/javascript; charset=utf-8", include_str!("../../web/chat.js")),
    ("listen.js", "text/javascript; charset=utf-8", include_str!("../../web/listen.js")),
    ("interpret.js", "text/javascript; charset=utf-8", include_str!("../../web/interpret.js")),
    ("floor.js", "text/javascript; charset=utf-8", include_str!("../../web/floor.js")),
    ("host.js", "text/javascript; charset=utf-8", include_str!("../../web/host.js")),
    ("room.js", "text/javascript; charset=utf-8", include_str!("../../web/room.js")),
    ("organise.js", "text/javascript; charset=utf-8", include_str!("../../web/organise.js")),
    ("index.js", "text/javascript; charset=utf-8", include_str!("../../web/index.js")),
    ("i18n.js", "text/javascript; charset=utf-8", include_str!("../../web/i18n.js")),
    ("limiter.js", "text/javascript; charset=utf-8", include_str!("../../web/limiter.js")),
    ("style.css", "text/css; charset=utf-8", include_str!("../../web/style.css")),
    ("i18n/en.json", "application/json", include_str!("../../web/i18n/en.json")),
    ("i18n/es.json", "application/json", include_str!("../../web/i18n/es.json")),
    ("i18n/fr.json", "application/json", include_str!("../../web/i18n/fr.json")),
    ("i18n/de.json", "application/json", include_str!("../../web/i18n/de.json")),
    ("i18n/pt.json", "application/json", include_str!("../../web/i18n/pt.json")),
    ("i18n/ar.json", "application/json", include_str!("../../web/i18n/ar.json")),
];

/// The languages of the pages, each with the plural forms its catalogue gives (CLDR, as the
/// browser's `Intl.PluralRules` names them).
#[cfg(test)]
const LANGUAGES: &[(&str, &[&str])] = &[
    ("en", &["one", "other"]),
    ("es", &["one", "many", "other"]),
    ("fr", &["one", "many", "other"]),
    ("de", &["one", "other"]),
    ("pt", &["one", "many", "other"]),
    ("ar", &["zero", "one", "two", "few", "many", "other"]),
];

/// An API error: the status comes from the code, the body says what went wrong.
pub(crate) struct ApiError(pub(crate) Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self.0.code {
            ErrorCode::BadMessage | ErrorCode::BadSdp => StatusCode::BAD_REQUEST,
            ErrorCode::BadToken | ErrorCode::TokenExpired | ErrorCode::Revoked | ErrorCode::NotJoined => {
                StatusCode::UNAUTHORIZED
            }
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::AlreadyJoined | ErrorCode::Exists | ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::Busy | ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Ended => StatusCode::GONE,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        };
        (status, Json(serde_json::json!({"code": self.0.code, "message": self.0.message}))).into_response()
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

pub fn router(app: App) -> Router {
    Router::new()
        .route("/", get(|| async { page("index.html") }))
        .route("/{file}", get(file))
        .route("/i18n/{file}", get(|Path(f): Path<String>| async move { page(&format!("i18n/{f}")) }))
        .route("/health", get(health))
        .route("/api/node", get(node))
        .route("/metrics", get(metrics))
        .route("/ws", get(ws))
        .route("/api/rooms", post(create_room).get(rooms))
        .route("/api/link", get(link))
        .route("/api/rooms/{id}", get(room).delete(delete_room))
        .route("/api/rooms/{id}/channels", post(add_channel))
        .route("/api/rooms/{id}/channels/{lang}", axum::routing::patch(rename_channel))
        .route("/api/rooms/{id}/tokens", post(mint))
        .route("/api/rooms/{id}/revoke", post(revoke))
        .route("/api/rooms/{id}/transcript", get(transcript).delete(delete_transcript))
        .route("/api/rooms/{id}/recording", post(recording))
        .route("/api/rooms/{id}/recordings", get(recordings))
        .route("/api/rooms/{id}/recordings/{take}", axum::routing::delete(delete_take))
        .route("/api/rooms/{id}/recordings/{take}/{file}", get(download).delete(delete_recording))
        .merge(super::whip::router())
        .layer(DefaultBodyLimit::max(MAX_MESSAGE))
        .with_state(app)
}

/// What the pages may load: their own scripts, styles and catalogues only (no inline script or
/// style, nothing from elsewhere), media from the microphone and WebRTC, the API and WebSocket
/// of this server.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    media-src 'self' blob: mediastream:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// A page or its script. In a cluster, the listener's page is sent to a clearly less loaded
/// node of `?region=` (unset: this node's), the invitation (in the fragment) going with it.
async fn file(
    State(app): State<App>,
    Path(f): Path<String>,
    axum::extract::Query(q): axum::extract::Query<RegionQuery>,
) -> Response {
    if f == "listen.html" {
        if let Some(to) = app.cluster().and_then(|c| c.send_listener(app.load(), q.region.as_deref())) {
            let location = format!("{}/listen.html", to.url);
            return (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, location)]).into_response();
        }
    }
    page(&f)
}

#[derive(serde::Deserialize, Default)]
struct RegionQuery {
    region: Option<String>,
}

/// `/api/node`: the node a listener (of `?region=`) is best served by, and every live node, for
/// a meeting platform that sends its participants to nodes itself.
async fn node(
    State(app): State<App>,
    axum::extract::Query(q): axum::extract::Query<RegionQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let c = app
        .cluster()
        .ok_or_else(|| Error::new(ErrorCode::NotFound, "this server is not one of a cluster"))?;
    Ok(Json(serde_json::json!({
        "node": c.listener_node(q.region.as_deref()),
        "nodes": c.nodes(),
    })))
}

fn page(file: &str) -> Response {
    match WEB.iter().find(|(name, _, _)| *name == file) {
        Some((_, mime, body)) => (
            [
                (header::CONTENT_TYPE, *mime),
                (header::CACHE_CONTROL, "no-cache"),
                (header::CONTENT_SECURITY_POLICY, CSP),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::REFERRER_POLICY, "no-referrer"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

/// Whether the caller may read monitoring details (room ids, listener counts): the API key or the metrics token.
fn may_monitor(app: &App, headers: &HeaderMap) -> bool {
    let Some(value) = bearer(headers) else { return false };
    constant_time_eq(value.as_bytes(), app.api_key().as_bytes())
        || app.metrics_token().is_some_and(|t| constant_time_eq(value.as_bytes(), t.as_bytes()))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
}

/// `/health`: a bare liveness answer for anyone; the counters and rooms for the operator.
async fn health(State(app): State<App>, headers: HeaderMap) -> ApiResult<Json<serde_json::Value>> {
    let snapshot = app.snapshot().await?;
    if !may_monitor(&app, &headers) {
        return Ok(Json(serde_json::json!({"status": "ok"})));
    }
    let mut body = serde_json::json!({
        "status": "ok",
        "captions": app.captions(),
        "asr_skipped_chunks": app.asr_skipped(),
    });
    let mut dropped = serde_json::Map::new();
    for (name, _, value) in snapshot.gauges() {
        body[name] = value.into();
    }
    for row in &COUNTERS {
        let value = snapshot.stats.get(row.counter).into();
        if row.dropped {
            dropped.insert(row.name.into(), value);
        } else {
            body[row.name] = value;
        }
    }
    body["dropped"] = dropped.into();
    if let Some(c) = app.cluster() {
        body["cluster"] = c.health();
    }
    Ok(Json(body))
}

async fn metrics(State(app): State<App>, headers: HeaderMap) -> ApiResult<Response> {
    if !may_monitor(&app, &headers) {
        return Err(Error::new(
            ErrorCode::BadToken,
            "send Authorization: Bearer <API key or metrics_token>: metrics name rooms and count listeners",
        )
        .into());
    }
    let text = app.metrics().await?;
    Ok(([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
        .into_response())
}

async fn ws(State(app): State<App>, upgrade: WebSocketUpgrade) -> Response {
    // Frames above our message limit are refused by the protocol parser with a
    // clear error; far larger ones close the socket before they are buffered.
    upgrade
        .max_message_size(4 * MAX_MESSAGE)
        .max_frame_size(4 * MAX_MESSAGE)
        // Signalling messages are small and rare: 4 KiB buffers (they grow for a big SDP)
        // instead of the 128 KiB default keep a thousand idle listeners' sessions cheap.
        .read_buffer_size(4096)
        .write_buffer_size(4096)
        .on_upgrade(move |socket| signal::session(socket, app))
}

/// Who is calling: the operator (API key) or the host of one room.
enum Caller {
    Operator,
    Host(String),
}

fn caller(app: &App, headers: &HeaderMap) -> Result<Caller, Error> {
    let value = bearer(headers).ok_or_else(|| {
        Error::new(ErrorCode::BadToken, "send Authorization: Bearer <API key or host token>")
    })?;
    if constant_time_eq(value.as_bytes(), app.api_key().as_bytes()) {
        return Ok(Caller::Operator);
    }
    let claims = app.verify(value)?;
    if claims.role != Role::Host {
        return Err(Error::new(ErrorCode::Forbidden, "only hosts may use the API"));
    }
    Ok(Caller::Host(claims.room))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

fn may_manage(app: &App, headers: &HeaderMap, room: &str) -> Result<(), Error> {
    match caller(app, headers)? {
        Caller::Operator => Ok(()),
        Caller::Host(r) if r == room => Ok(()),
        Caller::Host(_) => Err(Error::new(ErrorCode::Forbidden, "a host token manages only its own room")),
    }
}

fn body<T: for<'de> Deserialize<'de>>(bytes: &Bytes) -> Result<T, Error> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::new(ErrorCode::BadMessage, format!("bad JSON body: {e}")))
}

async fn create_room(State(app): State<App>, headers: HeaderMap, bytes: Bytes) -> ApiResult<Response> {
    if !matches!(caller(&app, &headers)?, Caller::Operator) {
        return Err(Error::new(ErrorCode::Forbidden, "creating rooms needs the API key").into());
    }
    let spec: RoomSpec = body(&bytes)?;
    let view = app.create_room(spec).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// In a cluster, what only the node that mixes a room holds (its live state, recordings,
/// transcripts) is asked of that node: `307` there, which keeps the method and the body.
fn at_origin(app: &App, id: &str, uri: &axum::http::Uri) -> Option<Response> {
    let url = app.cluster().and_then(|c| c.mixed_elsewhere(id))?;
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    Some((StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, format!("{url}{path}"))]).into_response())
}

async fn room(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    uri: axum::http::Uri,
) -> ApiResult<Response> {
    may_manage(&app, &headers, &id)?;
    if let Some(there) = at_origin(&app, &id, &uri) {
        return Ok(there);
    }
    match app.room(id.clone()).await? {
        Some(v) => Ok(Json(v).into_response()),
        None => Err(Error::new(ErrorCode::NotFound, format!("no room {id}")).into()),
    }
}

async fn delete_room(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    may_manage(&app, &headers, &id)?;
    app.delete_room(id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn add_channel(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Response> {
    may_manage(&app, &headers, &id)?;
    let spec: ChannelSpec = body(&bytes)?;
    let view = app.add_channel(id, spec).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MintRequest {
    role: Role,
    #[serde(default)]
    channel: Option<String>,
    /// Further channels an interpreter may publish into (bidirectional).
    #[serde(default)]
    also: Vec<String>,
    name: String,
    #[serde(default)]
    ttl_secs: Option<u64>,
    /// Also give the link as a QR code (SVG), for an audience in a hall to scan.
    #[serde(default)]
    qr: bool,
}

/// Longest an invitation may live: a conference week.
const MAX_TTL_SECS: u64 = 7 * 24 * 3600;

async fn mint(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Response> {
    may_manage(&app, &headers, &id)?;
    let req: MintRequest = body(&bytes)?;
    if req.name.trim().is_empty() || req.name.len() > 64 {
        return Err(Error::new(ErrorCode::BadMessage, "name must be 1-64 bytes").into());
    }
    if req.ttl_secs.is_some_and(|t| t == 0 || t > MAX_TTL_SECS) {
        return Err(Error::new(ErrorCode::BadMessage, format!("ttl_secs must be 1-{MAX_TTL_SECS}")).into());
    }
    let view = app
        .room(id.clone())
        .await?
        .ok_or_else(|| Error::new(ErrorCode::NotFound, format!("no room {id}")))?;
    for c in req.channel.iter().chain(&req.also) {
        if !view.channels.iter().any(|x| &x.lang == c) {
            return Err(Error::new(ErrorCode::NotFound, format!("no channel {c} in room {id}")).into());
        }
    }
    if req.role == Role::Interpreter && req.channel.is_none() {
        return Err(Error::new(ErrorCode::BadMessage, "an interpreter invitation needs a channel").into());
    }
    if !req.also.is_empty() && req.role != Role::Interpreter {
        return Err(
            Error::new(ErrorCode::BadMessage, "only interpreters publish into further channels").into()
        );
    }
    let claims = Claims {
        room: id,
        role: req.role,
        channel: req.channel,
        also: req.also,
        name: req.name.trim().to_string(),
        exp: 0,
        jti: String::new(),
    };
    let mut invite = app.invite(claims, req.ttl_secs);
    if req.qr {
        invite.qr = Some(qr_svg(&invite.url)?);
    }
    Ok((StatusCode::CREATED, Json(invite)).into_response())
}

/// A QR code of `text` as SVG: black on white, with the quiet zone, scaled by its viewBox.
fn qr_svg(text: &str) -> Result<String, Error> {
    let code = qrcode::QrCode::with_error_correction_level(text, qrcode::EcLevel::M)
        .map_err(|e| Error::new(ErrorCode::BadMessage, format!("no QR code for this link: {e}")))?;
    Ok(code.render::<qrcode::render::svg::Color>().min_dimensions(256, 256).build())
}

/// What an invitation link is, checked when its page opens (the token is the bearer): its room,
/// role and expiry, or why it no longer works.
async fn link(State(app): State<App>, headers: HeaderMap) -> ApiResult<Response> {
    let token = bearer(&headers)
        .ok_or_else(|| Error::new(ErrorCode::BadToken, "send Authorization: Bearer <invitation token>"))?;
    let claims = app.verify(token)?;
    if app.room(claims.room.clone()).await?.is_none() {
        return Err(Error::new(ErrorCode::NotFound, format!("no room {}", claims.room)).into());
    }
    Ok(Json(serde_json::json!({
        "room": claims.room, "role": claims.role, "channel": claims.channel, "name": claims.name,
        "expires_at": claims.exp,
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    /// The invitation link, or its token alone.
    link: String,
}

/// Revokes an invitation of this room: it cannot join again, and its page says so when it opens.
async fn revoke(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Response> {
    may_manage(&app, &headers, &id)?;
    let req: RevokeRequest = body(&bytes)?;
    let token = req.link.rsplit_once("token=").map_or(req.link.as_str(), |(_, t)| t).trim();
    let (claims, ended) = app.revoke(&id, token).await?;
    let answer =
        serde_json::json!({"revoked": claims.jti, "role": claims.role, "name": claims.name, "ended": ended});
    Ok(Json(answer).into_response())
}

/// The rooms of this server (the operator: the API key).
async fn rooms(State(app): State<App>, headers: HeaderMap) -> ApiResult<Response> {
    if !matches!(caller(&app, &headers)?, Caller::Operator) {
        return Err(Error::new(ErrorCode::Forbidden, "listing rooms needs the API key").into());
    }
    let stored = app.store().rooms().map_err(|e| {
        tracing::error!("{e}");
        Error::new(ErrorCode::Busy, "the server could not read its database; try again later")
    })?;
    let list: Vec<_> = stored
        .into_iter()
        .map(|r| serde_json::json!({"id": r.spec.id, "floor_lang": r.spec.floor_lang, "channels": r.spec.channels}))
        .collect();
    Ok(Json(serde_json::json!({ "rooms": list })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RenameRequest {
    name: String,
}

/// Renames a channel (its booth, listeners and transcript stay).
async fn rename_channel(
    State(app): State<App>,
    headers: HeaderMap,
    Path((id, lang)): Path<(String, String)>,
    bytes: Bytes,
) -> ApiResult<Response> {
    may_manage(&app, &headers, &id)?;
    let req: RenameRequest = body(&bytes)?;
    let view = app.rename_channel(id, lang, req.name).await?;
    Ok(Json(view).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TranscriptQuery {
    /// "floor" or a channel; unset: everything.
    source: Option<String>,
    /// "vtt" or "txt" (default).
    format: Option<String>,
}

async fn transcript(
    State(app): State<App>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<TranscriptQuery>,
) -> ApiResult<Response> {
    may_manage(&app, &headers, &id)?;
    if let Some(there) = at_origin(&app, &id, &uri) {
        return Ok(there);
    }
    let lines = app
        .store()
        .lines(&id, q.source.as_deref())
        .map_err(|e| Error::new(ErrorCode::Busy, e.to_string()))?;
    Ok(match q.format.as_deref() {
        Some("vtt") => ([(header::CONTENT_TYPE, "text/vtt; charset=utf-8")], crate::store::webvtt(&lines))
            .into_response(),
        None | Some("txt") => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            crate::store::text(&lines, q.source.is_none()),
        )
            .into_response(),
        Some(f) => {
            return Err(Error::new(ErrorCode::BadMessage, format!("format {f:?}: use vtt or txt")).into())
        }
    })
}

async fn delete_transcript(
    State(app): State<App>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    may_manage(&app, &headers, &id)?;
    if let Some(there) = at_origin(&app, &id, &uri) {
        return Ok(there);
    }
    let n = app.store().delete(&id).map_err(|e| Error::new(ErrorCode::Busy, e.to_string()))?;
    Ok(Json(serde_json::json!({"deleted": n})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordRequest {
    on: bool,
}

async fn recording(
    State(app): State<App>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Response> {
    may_manage(&app, &headers, &id)?;
    if let Some(there) = at_origin(&app, &id, &uri) {
        return Ok(there);
    }
    let req: RecordRequest = body(&bytes)?;
    app.set_recording(&id, req.on).await?;
    Ok(Json(serde_json::json!({"recording": req.on})).into_response())
}

async fn recordings(
    State(app): State<App>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    may_manage(&app, &headers, &id)?;
    if let Some(there) = at_origin(&app, &id, &uri) {
        return Ok(there);
    }
    let mut takes = app.takes(&id).await?;
    for t in &mut takes {
        for f in &mut t.files {
            f.url = Some(app.file_url(&id, &t.take, &f.name));
        }
    }
    Ok(Json(serde_json::json!({"takes": takes})).into_response())
}

/// A signed download link's expiry and signature (from the list of takes).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DownloadQuery {
    exp: Option<u64>,
    sig: Option<String>,
}

async fn download(
    State(app): State<App>,
    headers: HeaderMap,
    Path((id, take, file)): Path<(String, String, String)>,
    axum::extract::Query(q): axum::extract::Query<DownloadQuery>,
    request: axum::extract::Request,
) -> ApiResult<Response> {
    let signed = match (q.exp, q.sig.as_deref()) {
        (Some(exp), Some(sig)) => app.file_link_valid(&id, &take, &file, exp, sig),
        _ => false,
    };
    if !signed {
        may_manage(&app, &headers, &id)?;
    }
    let missing = || Error::new(ErrorCode::NotFound, format!("no recording {take}/{file} in room {id}"));
    if let Some(track) = file.strip_suffix(".vtt") {
        // The transcript of the file's source, on the file's timeline.
        let takes = app.takes(&id).await?;
        let t = takes.iter().find(|t| t.take == take).ok_or_else(missing)?;
        // Lines of this take's run of the server only: media time starts again after a restart.
        let until = t.info.stopped_at.map_or(u64::MAX / 2, |s| s + 5);
        let lines = app
            .store()
            .lines_made(&id, Some(track), t.info.started_at.saturating_sub(5), until)
            .map_err(|e| Error::new(ErrorCode::Busy, e.to_string()))?;
        let start = t.info.media_start_ms;
        let end = t.info.media_end_ms.unwrap_or(u64::MAX);
        let lines: Vec<_> = lines
            .into_iter()
            .filter(|l| l.start_ms >= start && l.start_ms < end)
            .map(|l| crate::store::Line {
                start_ms: l.start_ms - start,
                end_ms: l.end_ms.saturating_sub(start),
                ..l
            })
            .collect();
        return Ok(([(header::CONTENT_TYPE, "text/vtt; charset=utf-8")], crate::store::webvtt(&lines))
            .into_response());
    }
    let path = record::file_path(app.recordings(), &id, &take, &file).ok_or_else(missing)?;
    if !path.is_file() {
        return Err(missing().into());
    }
    let served =
        tower_http::services::ServeFile::new_with_mime(&path, &"audio/ogg".parse().expect("a MIME type"))
            .try_call(request)
            .await
            .map_err(disk)?;
    let mut response = served.map(axum::body::Body::new);
    let name = format!("attachment; filename=\"{id}-{take}-{file}\"");
    if let Ok(v) = header::HeaderValue::from_str(&name) {
        response.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

async fn delete_take(
    State(app): State<App>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Path((id, take)): Path<(String, String)>,
) -> ApiResult<Response> {
    may_manage(&app, &headers, &id)?;
    if let Some(there) = at_origin(&app, &id, &uri) {
        return Ok(there);
    }
    app.delete_recording(&id, &take, None).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn delete_recording(
    State(app): State<App>,
    headers: HeaderMap,
    Path((id, take, file)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    may_manage(&app, &headers, &id)?;
    app.delete_recording(&id, &take, Some(file)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn catalogue(lang: &str) -> serde_json::Map<String, serde_json::Value> {
        let (_, _, text) = WEB.iter().find(|(n, _, _)| *n == format!("i18n/{lang}.json")).expect("embedded");
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{lang}.json: {e}"))
    }

    /// The `{name}` placeholders of a message.
    fn holes(text: &str) -> BTreeSet<String> {
        text.split('{').skip(1).filter_map(|s| s.split_once('}')).map(|(n, _)| n.to_string()).collect()
    }

    #[test]
    fn every_key_is_in_every_catalogue_with_its_placeholders_and_plural_forms() {
        let en = catalogue("en");
        for (lang, forms) in LANGUAGES {
            let c = catalogue(lang);
            let (keys, want): (BTreeSet<_>, BTreeSet<_>) = (c.keys().collect(), en.keys().collect());
            assert_eq!(keys, want, "{lang}.json has other keys than en.json");
            for (key, english) in &en {
                let theirs = &c[key];
                match (english, theirs) {
                    (serde_json::Value::String(e), serde_json::Value::String(t)) => {
                        assert!(!t.trim().is_empty(), "{lang}: {key} is empty");
                        assert_eq!(holes(t), holes(e), "{lang}: {key} has other placeholders: {t:?}");
                    }
                    (serde_json::Value::Object(e), serde_json::Value::Object(t)) => {
                        let got: BTreeSet<&str> = t.keys().map(String::as_str).collect();
                        let need: BTreeSet<&str> = forms.iter().copied().collect();
                        assert_eq!(got, need, "{lang}: {key} needs the plural forms {forms:?}");
                        let allowed: BTreeSet<String> =
                            e.values().flat_map(|v| holes(v.as_str().unwrap_or(""))).collect();
                        for (form, v) in t {
                            let v = v.as_str().unwrap_or_else(|| panic!("{lang}: {key}.{form} is not text"));
                            assert!(
                                holes(v).is_subset(&allowed),
                                "{lang}: {key}.{form} has other placeholders: {v:?}"
                            );
                        }
                    }
                    _ => panic!("{lang}: {key} is {theirs} where en.json has {english}"),
                }
            }
        }
    }

    /// Every message the pages ask for (`data-i18n*="key"` in the HTML and the scripts,
    /// `t('key'` in the scripts) is in the English catalogue, and every English message is used.
    #[test]
    fn the_pages_ask_only_for_messages_that_exist_and_use_them_all() {
        let en = catalogue("en");
        let mut used = BTreeSet::new();
        for (name, _, text) in WEB.iter().filter(|(n, _, _)| n.ends_with(".html") || n.ends_with(".js")) {
            let mut keys: Vec<&str> = Vec::new();
            for open in ["data-i18n=\"", "-i18n-aria-label=\"", "-i18n-title=\"", "-i18n-placeholder=\""] {
                keys.extend(text.split(open).skip(1).filter_map(|p| p.split('"').next()));
            }
            // Calls of t('key' …), said('key') and attr(e, 'name', 'key'), not of other functions ending in t.
            for (i, _) in text.match_indices("('") {
                let before = &text[..i];
                let callee = before
                    .rsplit(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
                    .next()
                    .unwrap_or("");
                if callee == "t" || callee == "said" {
                    keys.extend(text[i + 2..].split('\'').next());
                }
            }
            for piece in text.split("attr(").skip(1) {
                // attr(element, 'attribute', 'key')
                let parts: Vec<&str> = piece.splitn(5, '\'').collect();
                if parts.len() == 5 && parts[0].ends_with(", ") && parts[2] == ", " {
                    keys.push(parts[3]);
                }
            }
            for key in keys.into_iter().filter(|k| !k.is_empty() && !k.contains(['$', ' ', '{'])) {
                assert!(en.contains_key(key), "{name} asks for {key:?}, which en.json does not have");
                used.insert(key.to_string());
            }
            // Keys made in a template, t(`balance.${step}`): every key with that prefix.
            for piece in text.split("t(`").skip(1) {
                if let Some((prefix, _)) = piece.split_once("${") {
                    used.extend(en.keys().filter(|k| k.starts_with(prefix)).cloned());
                }
            }
            // Keys held in lists (quick phrases, error codes) are written whole in the scripts.
            for key in en.keys() {
                if text.contains(&format!("'{key}'")) {
                    used.insert(key.clone());
                }
            }
        }
        let unused: Vec<&String> =
            en.keys().filter(|k| !used.contains(*k) && !k.starts_with("error.")).collect();
        assert!(unused.is_empty(), "en.json has messages no page uses: {unused:?}");
    }

    #[test]
    fn pages_are_served_with_a_policy_that_allows_no_inline_script() {
        let r = page("listen.html");
        let csp = r.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
        for (name, _, text) in WEB.iter().filter(|(n, _, _)| n.ends_with(".html")) {
            assert!(
                !text.contains("<script>") && !text.contains("<script type=\"module\">"),
                "{name} has an inline script"
            );
            assert!(
                !text.contains(" style=") && !text.contains(" onclick="),
                "{name} has inline style or handlers"
            );
        }
        for (name, _, text) in WEB.iter().filter(|(n, _, _)| n.ends_with(".js")) {
            assert!(
                !text.contains("innerHTML") && !text.contains("insertAdjacentHTML"),
                "{name} writes markup"
            );
        }
    }
}
