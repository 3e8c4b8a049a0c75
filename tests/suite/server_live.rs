//! WebSocket live runs against a real server over loopback, with
//! tokio-tungstenite: order, two clients, catch-up mid-run, reconnect,
//! cancel, and a client that stops reading.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use quire_engine::Limits;
use quire_web::ServerConfig;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::server::{check_events, numbered, TestServer};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(srv: &TestServer, ws: &str, token: &str) -> Socket {
    let url = format!("{}/workspaces/{ws}/live?token={token}", srv.ws_base);
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

async fn send(s: &mut Socket, v: Value) {
    s.send(Message::Text(v.to_string().into())).await.unwrap();
}

async fn next(s: &mut Socket) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(30), s.next())
            .await
            .expect("no message within 30 s")
            .expect("the socket closed")
            .unwrap();
        if let Message::Text(t) = m {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

async fn until_finished(s: &mut Socket, run: &str) -> Vec<Value> {
    let mut out = vec![];
    loop {
        let v = next(s).await;
        let done = v["run"] == run && v["type"] == "finished";
        if v.get("op").is_none() && v["run"] == run {
            out.push(v);
        }
        if done {
            return out;
        }
    }
}

const TICKS: &str = "for (let i = 0; i < 10; i++) { console.log('tick', i); await new Promise(r => setTimeout(r, 60)); } export default 'done';";

#[test]
fn two_clients_and_a_late_one_see_the_same_events_in_order() {
    let srv = TestServer::start(ServerConfig::default());
    let t = srv.workspace("w");
    let (s, _) = srv.call(
        "POST",
        "/workspaces/w/blocks",
        &t.editor,
        Some(json!({"id": "ticks", "source": TICKS, "lang": "js"})),
    );
    assert_eq!(s, 201);
    srv.rt.block_on(async {
        let mut watcher = connect(&srv, "w", &t.viewer).await;
        send(&mut watcher, json!({"op": "subscribe", "block": "ticks"})).await;
        assert_eq!(next(&mut watcher).await["op"], "subscribed");
        let mut runner = connect(&srv, "w", &t.editor).await;
        send(
            &mut runner,
            json!({"op": "run", "block": "ticks", "ref": "r1"}),
        )
        .await;
        let acc = next(&mut runner).await;
        assert_eq!(
            (acc["op"].clone(), acc["ref"].clone()),
            (json!("accepted"), json!("r1"))
        );
        let run = acc["run"].as_str().unwrap().to_string();
        // Read a few live events, then a third client joins mid-run.
        let mut first = vec![];
        while first.len() < 4 {
            first.push(next(&mut runner).await);
        }
        let mut late = connect(&srv, "w", &t.viewer).await;
        send(&mut late, json!({"op": "follow", "run": run})).await;
        assert_eq!(next(&mut late).await["op"], "following");
        let late_events = until_finished(&mut late, &run).await;
        first.extend(until_finished(&mut runner, &run).await);
        let announce = next(&mut watcher).await;
        assert_eq!(announce["op"], "run");
        let watched = until_finished(&mut watcher, &run).await;
        check_events(&first);
        check_events(&late_events);
        check_events(&watched);
        let first = numbered(&first);
        // 10 logs, started, result, the final meter and finished.
        assert_eq!(first.len(), 10 + 4, "{first:?}");
        assert_eq!(
            first,
            numbered(&late_events),
            "catch-up then live must equal live"
        );
        assert_eq!(first, numbered(&watched));
    });
}

#[test]
fn a_client_that_reconnects_catches_up_from_its_last_seq() {
    let srv = TestServer::start(ServerConfig::default());
    let t = srv.workspace("w");
    srv.rt.block_on(async {
        let mut c = connect(&srv, "w", &t.editor).await;
        send(
            &mut c,
            json!({"op": "run_source", "source": TICKS, "lang": "js"}),
        )
        .await;
        let run = next(&mut c).await["run"].as_str().unwrap().to_string();
        let mut got = vec![next(&mut c).await, next(&mut c).await, next(&mut c).await];
        drop(c); // the connection is lost mid-run; the run goes on
        let last = got.last().unwrap()["seq"].as_u64().unwrap();
        let mut c = connect(&srv, "w", &t.viewer).await;
        send(
            &mut c,
            json!({"op": "follow", "run": run, "from_seq": last + 1}),
        )
        .await;
        assert_eq!(next(&mut c).await["op"], "following");
        got.extend(until_finished(&mut c, &run).await);
        check_events(&got);
        assert_eq!(numbered(&got).len(), 14, "{got:?}");
    });
}

#[test]
fn cancel_over_a_socket_ends_a_run_in_a_runner() {
    let srv = TestServer::start(ServerConfig::default());
    let t = srv.workspace("w");
    srv.rt.block_on(async {
        let mut c = connect(&srv, "w", &t.editor).await;
        send(
            &mut c,
            json!({"op": "run_source", "source": "console.log('spin'); for (;;) {}", "lang": "js"}),
        )
        .await;
        let run = next(&mut c).await["run"].as_str().unwrap().to_string();
        loop {
            if next(&mut c).await["type"] == "log" {
                break;
            }
        }
        send(&mut c, json!({"op": "cancel", "run": run})).await;
        let rest = until_finished(&mut c, &run).await;
        let err = rest.iter().find(|e| e["type"] == "error").unwrap();
        assert_eq!(err["kind"], "cancelled", "{rest:?}");
    });
}

#[test]
fn a_client_that_stops_reading_is_closed_while_others_run_normally() {
    let srv = TestServer::start(ServerConfig {
        ws_send_timeout_ms: 500,
        run_limits: Limits {
            cpu_time_ms: 20_000,
            wall_time_ms: 60_000,
            output_bytes: 64 << 20,
            output_events: 400_000,
            ..Limits::default()
        },
        ..ServerConfig::default()
    });
    let t = srv.workspace("w");
    // Per-run CPU, wall and output come from the workspace's quota, within
    // the server's ceilings: raise both through the API.
    let big = json!({"cpu_ms_per_run": 20_000, "wall_ms_per_run": 60_000, "output_bytes_per_run": 64 << 20});
    let (s, v) = srv.call("PUT", "/quota/ceilings", &srv.admin, Some(big.clone()));
    assert_eq!(s, 200, "{v}");
    let (s, v) = srv.call("PUT", "/workspaces/w/quota", &t.admin, Some(big));
    assert_eq!(s, 200, "{v}");
    srv.rt.block_on(async {
        // ~25 MB of events: more than loopback socket buffers hold.
        let flood = "const line = 'x'.repeat(100); for (let i = 0; i < 200000; i++) console.log(line);";
        let mut slow = connect(&srv, "w", &t.editor).await;
        send(&mut slow, json!({"op": "run_source", "source": flood, "lang": "js"})).await;
        // It never reads again. Another client runs as usual meanwhile.
        let mut fast = connect(&srv, "w", &t.editor).await;
        send(&mut fast, json!({"op": "run_source", "source": "console.log('hi'); export default 1", "lang": "js"})).await;
        let run = next(&mut fast).await["run"].as_str().unwrap().to_string();
        check_events(&until_finished(&mut fast, &run).await);
        // Without reading anything more, wait for the server to give up
        // on the slow client.
        let metrics_url = format!("{}/metrics", srv.root);
        let auth = format!("Bearer {}", srv.admin);
        let mut closed = false;
        for _ in 0..600 {
            let (url, auth) = (metrics_url.clone(), auth.clone());
            let m = tokio::task::spawn_blocking(move || {
                ureq::get(&url).set("Authorization", &auth).call().unwrap().into_string().unwrap()
            })
                .await
                .unwrap();
            if m.contains("quire_websocket_slow_closes_total 1") {
                closed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(closed, "the server kept a client that read nothing for 60 s");
        // Draining the socket now ends with close code 4008 (or the
        // connection dropping), never with the flood's last event.
        while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(60), slow.next()).await {
            match m {
                Ok(Message::Close(Some(f))) => {
                    assert_eq!(u16::from(f.code), 4008);
                    break;
                }
                Ok(Message::Text(t)) => assert!(!t.contains("\"finished\""), "the slow client got everything"),
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    let metrics = ureq::get(&format!("{}/metrics", srv.root))
        .set("Authorization", &format!("Bearer {}", srv.admin))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        metrics.contains("quire_websocket_slow_closes_total 1"),
        "{metrics}"
    );
}

/// A live connection that sends its token as a WebSocket subprotocol
/// (`quire.token.<token>` beside `quire.v1`), as the browser app does.
async fn connect_by_protocol(
    srv: &TestServer,
    ws: &str,
    protocols: &str,
) -> Result<(Socket, Option<String>), tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("{}/workspaces/{ws}/live", srv.ws_base)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", protocols.parse().unwrap());
    let (sock, resp) = tokio_tungstenite::connect_async(req).await?;
    let chosen = resp
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok((sock, chosen))
}

#[test]
fn the_token_can_travel_as_a_subprotocol_not_in_the_url() {
    let srv = TestServer::start(ServerConfig::default());
    let t = srv.workspace("w");
    let (s, _) = srv.call(
        "POST",
        "/workspaces/w/blocks",
        &t.editor,
        Some(json!({"id": "hi", "source": "export default 'hi'", "lang": "js"})),
    );
    assert_eq!(s, 201);
    srv.rt.block_on(async {
        let offer = format!("quire.v1, quire.token.{}", t.editor);
        let (mut sock, chosen) = connect_by_protocol(&srv, "w", &offer).await.unwrap();
        // The server answers with the protocol, never echoing the token.
        assert_eq!(chosen.as_deref(), Some("quire.v1"));
        send(&mut sock, json!({"op": "run", "block": "hi", "ref": "r"})).await;
        let acc = next(&mut sock).await;
        assert_eq!(acc["op"], "accepted", "{acc}");
        let run = acc["run"].as_str().unwrap().to_string();
        let events = until_finished(&mut sock, &run).await;
        assert!(events.iter().any(|e| e["type"] == "result" && e["value"] == "hi"));
        // A wrong token, an empty one, or another workspace's: refused
        // before the upgrade.
        for (ws, offer) in [
            ("w", "quire.v1, quire.token.qt_nope_nope".to_string()),
            ("w", "quire.v1, quire.token.".to_string()),
            ("other", format!("quire.v1, quire.token.{}", t.editor)),
        ] {
            let err = connect_by_protocol(&srv, ws, &offer).await.err();
            assert!(
                matches!(&err, Some(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status().is_client_error()),
                "{ws} {offer}: {err:?}"
            );
        }
    });
}
