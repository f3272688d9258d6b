//! One signalling session per WebSocket: parses client messages, checks the token, relays to the media thread and back.

use super::{limits, App};
use crate::core::engine::Admission;
use crate::protocol::{self, ClientMsg, Error, ErrorCode, ServerMsg};
use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

/// Messages the media thread may queue for one session before it drops them
/// (a client that stops reading must not grow server memory). Boxed in the queue, whose
/// slots are allocated 32 at a time: 32 pointers instead of 32 messages per session.
const SESSION_QUEUE: usize = 64;
/// A WebSocket that has not joined this long after it opened is closed (it holds a file and memory).
const JOIN_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn session(socket: WebSocket, app: App) {
    let peer = app.next_peer();
    let (mut sink, mut stream) = socket.split();
    let (events_tx, mut events) = mpsc::channel::<Box<ServerMsg>>(SESSION_QUEUE);
    // The room, once joined, and the session's place in its invitation link's count.
    let mut joined: Option<String> = None;
    let mut place: Option<limits::Place> = None;
    let mut asks =
        limits::Bucket::new(limits::SESSION_BURST, limits::SESSION_RATE, std::time::Instant::now());
    let join_by = tokio::time::Instant::now() + JOIN_WITHIN;
    loop {
        let reply = tokio::select! {
            _ = tokio::time::sleep_until(join_by), if joined.is_none() => {
                let e = Error::new(ErrorCode::NotJoined, "no join within 5 s: closing").to_msg();
                let text = serde_json::to_string(&e).expect("server messages serialise");
                let _ = sink.send(Message::Text(text.into())).await;
                break;
            }
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(_))) if !asks.take(std::time::Instant::now()) => {
                    Some(limits::rate_limited("messages from this session").to_msg())
                }
                Some(Ok(Message::Text(text))) if joined.is_none() && app.cluster().is_some() => {
                    match origin_elsewhere(&app, text.as_str()).await {
                        Ok(Some(url)) => return proxy(sink, stream, &url, text.as_str()).await,
                        Ok(None) => handle(&app, peer, (&mut joined, &mut place), &events_tx, text.as_str()).await,
                        Err(e) => Some(e.to_msg()),
                    }
                }
                Some(Ok(Message::Text(text))) => handle(&app, peer, (&mut joined, &mut place), &events_tx, text.as_str()).await,
                Some(Ok(Message::Binary(_))) => Some(Error::new(ErrorCode::BadMessage, "binary messages are not part of the protocol; send JSON text").to_msg()),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => None,
                Some(Ok(Message::Close(_))) | None => break,
                Some(Err(e)) => {
                    tracing::debug!(peer, "websocket closed: {e}");
                    break;
                }
            },
            Some(ev) = events.recv() => Some(*ev),
        };
        if let Some(reply) = reply {
            let ended = matches!(reply, ServerMsg::Error { code: ErrorCode::Ended | ErrorCode::Revoked, .. });
            let text = serde_json::to_string(&reply).expect("server messages serialise");
            if sink.send(Message::Text(text.into())).await.is_err() || ended {
                break;
            }
        }
    }
    if joined.is_some() {
        app.send(|_| super::driver::Command::Leave { peer }).await.ok();
    }
}

/// For a join on a node of a cluster: the node to carry the session to, when it is a source's
/// or a host's and its room is mixed on another node (listeners stay: their streams come here).
async fn origin_elsewhere(app: &App, text: &str) -> Result<Option<String>, Error> {
    let Some(cluster) = app.cluster() else { return Ok(None) };
    let Ok(ClientMsg::Join { token, .. }) = protocol::parse(text) else { return Ok(None) };
    // A bad token is answered by `handle`, as on any node.
    let Ok(claims) = app.verify(&token) else { return Ok(None) };
    match cluster.origin(app, &claims.room).await? {
        super::cluster::Origin::There(url) if claims.role != crate::protocol::Role::Listener => Ok(Some(url)),
        _ => Ok(None),
    }
}

/// Carries a session whole to the node that mixes its room: every message both ways, in
/// order, so control and its replies work as there, and the SDP answer names that node's
/// media address (the source's media goes straight to it, no hop added). When either side
/// closes, so does the other; the page joins again, and is carried to whichever node mixes
/// the room by then.
/// How often a carried session pings the origin; three times this without a word ends it.
const PROXY_PING: std::time::Duration = std::time::Duration::from_secs(5);

async fn proxy(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut stream: futures_util::stream::SplitStream<WebSocket>,
    base: &str,
    join: &str,
) {
    use tokio_tungstenite::tungstenite::Message as Up;
    let url = format!("{}/ws", base.replacen("http", "ws", 1));
    let upstream = tokio::time::timeout(JOIN_WITHIN, tokio_tungstenite::connect_async(url.as_str())).await;
    let Ok(Ok((upstream, _))) = upstream else {
        tracing::warn!(url, "cluster: the room's node cannot be reached");
        let e = Error::new(ErrorCode::Busy, "the room's node cannot be reached now; join again in a moment");
        let text = serde_json::to_string(&e.to_msg()).expect("server messages serialise");
        let _ = sink.send(Message::Text(text.into())).await;
        return;
    };
    let (mut up_sink, mut up_stream) = upstream.split();
    if up_sink.send(Up::Text(join.into())).await.is_err() {
        return;
    }
    // The origin is pinged: one whose machine died or was cut off sends no close, and the
    // session would otherwise wait for TCP to give up (many minutes) before the page rejoins.
    let mut ping = tokio::time::interval(PROXY_PING);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = ping.tick() => {
                if heard.elapsed() > 3 * PROXY_PING {
                    tracing::warn!(url, "cluster: the room's node stopped answering; the session ends");
                    break;
                }
                if up_sink.send(Up::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
            }
            m = stream.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    if up_sink.send(Up::Text(t.as_str().into())).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Binary(_))) => {}
                _ => break,
            },
            m = up_stream.next() => match m.inspect(|_| heard = tokio::time::Instant::now()) {
                Some(Ok(Up::Text(t))) => {
                    if sink.send(Message::Text(t.as_str().into())).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Up::Ping(_) | Up::Pong(_) | Up::Binary(_) | Up::Frame(_))) => {}
                _ => break,
            },
        }
    }
    let _ = up_sink.send(Up::Close(None)).await;
    let _ = sink.send(Message::Close(None)).await;
}

async fn handle(
    app: &App,
    peer: u64,
    (joined, place): (&mut Option<String>, &mut Option<limits::Place>),
    events: &mpsc::Sender<Box<ServerMsg>>,
    text: &str,
) -> Option<ServerMsg> {
    use super::driver::Command;
    let msg = match protocol::parse(text) {
        Ok(m) => m,
        Err(e) => return Some(e.to_msg()),
    };
    let result = match msg {
        ClientMsg::Join { token, publish, resume } => {
            if joined.is_some() {
                return Some(
                    Error::new(ErrorCode::AlreadyJoined, "this session has already joined").to_msg(),
                );
            }
            let claims = match app.verify(&token) {
                Ok(c) => c,
                Err(e) => return Some(e.to_msg()),
            };
            let held = match app.links().hold(&token, claims.role, std::time::Instant::now()) {
                Ok(p) => p,
                Err(e) => return Some(e.to_msg()),
            };
            if resume.as_ref().is_some_and(|k| k.is_empty() || k.len() > 64) {
                return Some(Error::new(ErrorCode::BadMessage, "resume must be 1-64 bytes").to_msg());
            }
            let who = Admission { resume, ..claims.admission() };
            let events = Some(events.clone());
            let mut r = app.request(|reply| Command::Join { peer, who, publish, events, reply }).await;
            if let Ok(ServerMsg::Joined { ice_servers, .. }) = &mut r {
                *ice_servers = app.ice_servers();
                *joined = Some(claims.room);
                *place = Some(held);
            }
            r
        }
        ClientMsg::Captions { source, on } if joined.is_some() => {
            let room = joined.clone().expect("checked");
            let msg = ClientMsg::Captions { source: source.clone(), on };
            match app.request(|reply| Command::Message { peer, msg, reply }).await {
                // Kept before the host hears it is done, so that it survives a restart.
                Ok(reply) => match app.keep_captions(&room, source.as_deref(), on) {
                    Ok(()) => return reply,
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            }
        }
        ClientMsg::Record { on } if joined.is_some() => {
            let room = joined.clone().expect("checked");
            if on {
                if let Err(e) = app.room_to_record().await {
                    return Some(e.to_msg());
                }
            }
            let msg = ClientMsg::Record { on };
            match app.request(|reply| Command::Message { peer, msg, reply }).await {
                // Kept before the host hears it is done: a restart goes on recording.
                Ok(reply) => match app.keep_recording(&room, on) {
                    Ok(()) => return reply,
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            }
        }
        _ if joined.is_none() => {
            Err(Error::new(ErrorCode::NotJoined, "send a join message with a token first"))
        }
        ClientMsg::Offer { sdp } => match super::read_offer(sdp).await {
            Ok(offer) => {
                let offer = Box::new(offer);
                match app.request(|reply| Command::Offer { peer, offer, reply }).await {
                    Ok(reply) => return reply,
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        },
        msg => match app.request(|reply| Command::Message { peer, msg, reply }).await {
            Ok(reply) => return reply,
            Err(e) => Err(e),
        },
    };
    Some(result.unwrap_or_else(|e| e.to_msg()))
}
