//! WHIP ingest (RFC 9725) and WHEP egress: an SDP offer in, an SDP answer and a resource URL out, no WebSocket.
//!
//! - `POST /whip` (floor or interpreter token) publishes; `POST /whep`
//!   (listener or host token, optional `?channel=es`) plays. Body and answer
//!   are `application/sdp`; the answer comes with `201 Created` and a
//!   `Location` to the session's resource.
//! - `PATCH <resource>` with `application/trickle-ice-sdpfrag`: `204`. The
//!   server is ICE-lite and learns the client's address from its checks, so
//!   trickled candidates are not needed and are ignored.
//! - `DELETE <resource>` ends the session.
//! - `POST /whep/<id>/select` `{"channel":"fr","only":false}`: switch a WHEP
//!   session's channel without renegotiation (a tolk extension).

use super::driver::Command;
use super::http::{ApiError, ApiResult};
use super::App;
use crate::protocol::{ClientMsg, Error, ErrorCode, Role, ServerMsg};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

pub fn router() -> Router<App> {
    Router::new()
        .route("/whip", post(whip).options(options))
        .route("/whep", post(whep).options(options))
        .route("/whip/{id}", axum::routing::patch(trickle).delete(delete).options(options))
        .route("/whep/{id}", axum::routing::patch(trickle).delete(delete).options(options))
        .route("/whep/{id}/select", post(select))
}

/// Lets browser pages on other origins (a meeting platform's) use the doors.
fn cors(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    h.insert("access-control-expose-headers", HeaderValue::from_static("location"));
    r
}

async fn options() -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    h.insert("accept-post", HeaderValue::from_static("application/sdp"));
    h.insert("access-control-allow-methods", HeaderValue::from_static("POST, PATCH, DELETE, OPTIONS"));
    h.insert("access-control-allow-headers", HeaderValue::from_static("authorization, content-type"));
    cors(r)
}

fn unsupported(what: &str) -> Response {
    let body = serde_json::json!({"code": "bad_message", "message": format!("send {what}")});
    cors((StatusCode::UNSUPPORTED_MEDIA_TYPE, Json(body)).into_response())
}

fn content_type_is(headers: &HeaderMap, want: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(want))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WhepQuery {
    channel: Option<String>,
}

async fn whip(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    cors(offer(&app, "whip", &headers, body, None).await.unwrap_or_else(IntoResponse::into_response))
}

async fn whep(
    State(app): State<App>,
    Query(q): Query<WhepQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    cors(offer(&app, "whep", &headers, body, q.channel).await.unwrap_or_else(IntoResponse::into_response))
}

/// Joins with the bearer token, negotiates, and creates the resource.
async fn offer(
    app: &App,
    door: &str,
    headers: &HeaderMap,
    body: Bytes,
    channel: Option<String>,
) -> Result<Response, ApiError> {
    if !content_type_is(headers, "application/sdp") {
        return Ok(unsupported("the SDP offer with Content-Type: application/sdp"));
    }
    // A language tag, as channels are named (and so safe to put in a redirect's query as it is).
    if channel
        .as_deref()
        .is_some_and(|c| c.len() > 35 || !c.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
    {
        return Err(Error::new(
            ErrorCode::NotFound,
            "no such channel: ?channel= takes a language tag (es, pt-BR)",
        )
        .into());
    }
    let sdp =
        std::str::from_utf8(&body).ok().filter(|s| s.trim_start().starts_with("v=0")).ok_or_else(|| {
            Error::new(ErrorCode::BadSdp, "the body is not an SDP offer (it must start with v=0)")
        })?;
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| Error::new(ErrorCode::BadToken, "send Authorization: Bearer <invitation token>"))?;
    let claims = app.verify(token)?;
    let allowed = match door {
        "whip" => matches!(claims.role, Role::Floor | Role::Interpreter),
        _ => matches!(claims.role, Role::Listener | Role::Host),
    };
    if !allowed {
        let hint = if door == "whip" { "play with WHEP" } else { "publish with WHIP" };
        return Err(Error::new(
            ErrorCode::Forbidden,
            format!("a {} token cannot use {door}: {hint}", claims.role.as_str()),
        )
        .into());
    }
    if let Some(c) = app.cluster() {
        // Publishers (and hosts) belong on the node that mixes the room: sent there (RFC 9725
        // lets a WHIP server redirect); listeners stay, once the room has a node.
        let origin = c.origin(app, &claims.room).await?;
        if let (super::cluster::Origin::There(url), false) = (&origin, claims.role == Role::Listener) {
            let query = channel.map(|c| format!("?channel={c}")).unwrap_or_default();
            let location = format!("{url}/{door}{query}");
            return Ok((StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, location)]).into_response());
        }
        // A listener goes to a clearly less loaded node, so that adding nodes adds capacity.
        if let (Some(to), Role::Listener) = (c.send_listener(app.load(), None), claims.role) {
            let query = channel.map(|c| format!("?channel={c}")).unwrap_or_default();
            let location = format!("{}/{door}{query}", to.url);
            return Ok((StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, location)]).into_response());
        }
    }
    app.links().join(token, claims.role, std::time::Instant::now())?;
    let peer = app.next_peer();
    // A publisher that posts again with the same invitation (its connection died, or it
    // restarted) replaces its old session, which would otherwise hold the booth's air.
    let resume = (door == "whip").then(|| format!("whip {token}"));
    let who = crate::core::engine::Admission { resume, ..claims.admission() };
    app.request(|reply| Command::Join { peer, who, publish: None, events: None, reply }).await?;
    let negotiated = async {
        if let Some(c) = channel {
            let msg = ClientMsg::Select { channel: Some(c), only: false, balance: None };
            app.request(|reply| Command::Message { peer, msg, reply }).await?;
        }
        let offer = Box::new(super::read_offer(sdp.to_string()).await?);
        match app.request(|reply| Command::Offer { peer, offer, reply }).await? {
            Some(ServerMsg::Answer { sdp }) => Ok(sdp),
            _ => Err(Error::new(ErrorCode::Busy, "the offer got no answer; try again")),
        }
    }
    .await;
    let answer = match negotiated {
        Ok(a) => a,
        Err(e) => {
            app.send(|_| Command::Leave { peer }).await.ok();
            return Err(e.into());
        }
    };
    let id = super::random_hex(16);
    app.resources().insert(id.clone(), peer);
    let location = format!("/{door}/{id}");
    Ok((
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/sdp".to_string()), (header::LOCATION, location)],
        answer,
    )
        .into_response())
}

fn not_found() -> ApiError {
    ApiError(Error::new(ErrorCode::NotFound, "no such WHIP/WHEP session"))
}

async fn trickle(State(app): State<App>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if !app.resources().contains_key(&id) {
        return cors(not_found().into_response());
    }
    if !content_type_is(&headers, "application/trickle-ice-sdpfrag") {
        return unsupported("Content-Type: application/trickle-ice-sdpfrag");
    }
    cors(StatusCode::NO_CONTENT.into_response())
}

async fn delete(State(app): State<App>, Path(id): Path<String>) -> Response {
    let peer = app.resources().remove(&id);
    match peer {
        Some(peer) => {
            app.send(|_| Command::Leave { peer }).await.ok();
            cors(StatusCode::OK.into_response())
        }
        None => cors(not_found().into_response()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SelectBody {
    channel: Option<String>,
    #[serde(default)]
    only: bool,
}

async fn select(State(app): State<App>, Path(id): Path<String>, body: Bytes) -> ApiResult<Response> {
    let peer = app.resources().get(&id).copied().ok_or_else(not_found)?;
    let req: SelectBody = serde_json::from_slice(&body)
        .map_err(|e| Error::new(ErrorCode::BadMessage, format!("bad JSON body: {e}")))?;
    let msg = ClientMsg::Select { channel: req.channel, only: req.only, balance: None };
    let reply = app.request(|reply| Command::Message { peer, msg, reply }).await?;
    Ok(cors(Json(reply).into_response()))
}
