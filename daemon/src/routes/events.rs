//! The event endpoints: `GET /events` (Server-Sent Events) and `GET /events/history`,
//! fed by the daemon's [`crate::events::EventHub`].
//!
//! A subscriber first subscribes to the broadcast, then replays from the database
//! everything after its cursor, then forwards live events, skipping any sequence number
//! it has already sent: nothing is lost or duplicated at the seam. A subscriber that
//! falls behind the broadcast buffer catches up from the database.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use offerhub::error::Error;
use offerhub::events::{self, Event, EventFilter};
use offerhub::pagination::{PageRequest, encode_cursor};
use offerhub::store::Store;
use serde_json::json;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::api::{ApiResult, Auth, Read, respond_page_with};
use crate::dto::events as dto;
use crate::state::AppState;

/// Heartbeat interval of SSE connections.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// Parses `types`/`resources` (repeated or comma lists), `cursor` and `limit` from a
/// raw query string.
struct EventQuery {
    filter: EventFilter,
    cursor: Option<String>,
    limit: Option<u32>,
}

fn parse_query(q: Option<&str>) -> Result<EventQuery, Error> {
    let (mut types, mut resources, mut cursor, mut limit) = (Vec::new(), Vec::new(), None, None);
    for (k, v) in form_urlencoded::parse(q.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "types" | "type" => types.push(v.into_owned()),
            "resources" | "resourceTypes" => resources.push(v.into_owned()),
            "cursor" => cursor = Some(v.into_owned()),
            "limit" => {
                limit = Some(
                    v.parse::<u32>()
                        .map_err(|_| Error::validation("limit", "must be a whole number"))?,
                )
            }
            other => {
                return Err(Error::validation(
                    other,
                    "is not a parameter of this endpoint",
                ));
            }
        }
    }
    Ok(EventQuery {
        filter: EventFilter::parse(&types, &resources)?,
        cursor,
        limit,
    })
}

fn sse_event(e: &Event) -> SseEvent {
    SseEvent::default()
        .id(e.id.clone())
        .event(e.event_type.clone())
        .data(serde_json::to_string(&dto::Event::from(e)).unwrap_or_default())
}

/// `GET /events` (any valid key): Server-Sent Events. `id:` event id, `event:` type,
/// `data:` `{id, type, occurredAt, resourceType, resourceId, data}`. Resume with the
/// `Last-Event-ID` header or `?cursor=<event id>`; filters `types` (comma list or
/// repeated; `order.*` wildcards) and `resources`. Heartbeat comment every 15 s.
#[utoipa::path(
    get,
    operation_id = "streamEvents",
    path = "/events",
    tag = "Events",
    params(("types" = Option<String>, Query, description = "Comma list or repeated; `order.*` wildcards"), ("resources" = Option<String>, Query, description = "Resource types (order, user, escrow, …), comma list or repeated"), ("cursor" = Option<String>, Query, description = "Resume after this event id (or send Last-Event-ID)"), ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id")),
    security(("bearer" = ["read"])),
    responses((status = 200, description = "text/event-stream: `id:` event id, `event:` type, `data:` the event as JSON; a comment heartbeat every 15 s", content_type = "text/event-stream", body = crate::dto::events::Event))
)]
pub async fn stream(
    State(state): State<AppState>,
    _auth: Auth<Read>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> ApiResult<Response> {
    let q = parse_query(uri.query())?;
    // An empty `?cursor=` means no cursor, as on `/events/history`; a bad one is named
    // by where it came from.
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .filter(|s| !s.is_empty())
        .map(|id| (id, "Last-Event-ID"))
        .or(q.cursor.filter(|c| !c.is_empty()).map(|c| (c, "cursor")));
    // Subscribe before reading the database, so nothing committed meanwhile is missed.
    let live = state.events.subscribe();
    let last = match &resume {
        Some((id, field)) => events::seq_of(&state.store, id, field).await?,
        None => events::last_seq(&state.store).await?,
    };
    let (tx, rx) = mpsc::channel::<Result<SseEvent, Infallible>>(256);
    let store = state.store.clone();
    let filter = q.filter;
    // Tracked by the hub: it ends on shutdown, which waits for it.
    state.events.spawn(forward(store, filter, last, live, tx));
    Ok(Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat"))
        .into_response())
}

/// Sends a subscriber everything after `last` from the database, then the live events,
/// until the client is gone.
async fn forward(
    store: Store,
    filter: EventFilter,
    mut last: i64,
    mut live: broadcast::Receiver<Arc<Event>>,
    tx: mpsc::Sender<Result<SseEvent, Infallible>>,
) {
    {
        // Sends everything after `last` from the database; false when the client is gone.
        async fn catch_up(
            store: &Store,
            filter: &EventFilter,
            last: &mut i64,
            tx: &mpsc::Sender<Result<SseEvent, Infallible>>,
        ) -> bool {
            loop {
                let Ok(batch) = events::after(store, *last, 500).await else {
                    return true;
                };
                let full = batch.len() == 500;
                for e in &batch {
                    *last = e.seq;
                    if filter.matches(e) && tx.send(Ok(sse_event(e))).await.is_err() {
                        return false;
                    }
                }
                if !full {
                    return true;
                }
            }
        }
        if !catch_up(&store, &filter, &mut last, &tx).await {
            return;
        }
        loop {
            match live.recv().await {
                Ok(e) => {
                    if e.seq <= last {
                        continue;
                    }
                    if e.seq > last + 1 {
                        if !catch_up(&store, &filter, &mut last, &tx).await {
                            return;
                        }
                        if e.seq <= last {
                            continue;
                        }
                    }
                    last = e.seq;
                    if filter.matches(&e) && tx.send(Ok(sse_event(&e))).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if !catch_up(&store, &filter, &mut last, &tx).await {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

/// `GET /events/history` (read): the same rows as JSON pages, oldest first. `cursor` is
/// an event id or the previous page's `nextCursor`.
#[utoipa::path(
    get,
    operation_id = "listEvents",
    path = "/events/history",
    tag = "Events",
    params(("types" = Option<String>, Query, description = "Comma list or repeated; `order.*` wildcards"), ("resources" = Option<String>, Query, description = "Resource types (order, user, …)"), ("cursor" = Option<String>, Query, description = "An event id or the previous page's nextCursor"), ("limit" = Option<u32>, Query, description = "1–100, default 20")),
    security(("bearer" = ["read"])),
    responses((status = 200, description = "Events, oldest first", body = crate::openapi::Page<crate::dto::events::Event>))
)]
pub async fn history(
    State(state): State<AppState>,
    auth: Auth<Read>,
    uri: axum::http::Uri,
) -> ApiResult {
    let q = parse_query(uri.query())?;
    let page = PageRequest::new(q.limit, None)?;
    let after = match q.cursor {
        None => 0,
        Some(c) if c.starts_with("evt_") => events::seq_of(&state.store, &c, "cursor").await?,
        Some(c) => PageRequest::new(None, Some(c))?.cursor_seq()?.unwrap_or(0),
    };
    let (items, scanned_to, has_more) =
        events::history(&state.store, &q.filter, after, page.limit).await?;
    let next = if has_more {
        Some(encode_cursor(scanned_to))
    } else {
        None
    };
    Ok(respond_page_with(
        &auth.request_id,
        items.iter().map(dto::Event::from).collect(),
        has_more,
        next,
        json!({ "lastSequence": scanned_to }),
    ))
}
