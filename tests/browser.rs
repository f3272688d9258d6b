//! Real browsers: headless Chromium (playwright-core) runs the interpreter console with a fake
//! microphone and the listener page; the listener's WebAudio analyser must hear the
//! interpreter's tone, after a handover clicked through two consoles the partner's, and
//! again by itself after the server is killed, a WebSocket closes or the media path drops.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tolk::protocol::Role;

/// Runs one of the node scripts in tests/browser and returns its JSON result line.
async fn node(script: &str, args: &[&str]) -> serde_json::Value {
    node_with(script, args, &[]).await
}

/// As [`node`], with environment variables for the script.
async fn node_with(script: &str, args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: run `npm ci --prefix tests/browser` (./tolk.sh test does it)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "Chromium not found at {chromium}: apt-get install chromium (./tolk.sh test does it)"
    );
    let run = tokio::process::Command::new("node")
        .arg(dir.join(script))
        .args(args)
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(200), run)
        .await
        .expect("browser test finishes")
        .expect("node runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "browser test failed:\n{stderr}\n{stdout}");
    serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("a JSON result line")
}

/// A tone file of its own (tests run side by side, and each deletes its files when done).
fn wav(hz: f32) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("tolk-e2e-{}-{n}-{hz}.wav", std::process::id()));
    write_tone_wav(&path, hz, 10.0);
    path
}

fn peak(v: &serde_json::Value) -> f64 {
    v["peakHz"].as_f64().unwrap()
}

fn level(v: &serde_json::Value, hz: &str) -> f64 {
    v["levels"][hz].as_f64().unwrap_or(-200.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_listener_hears_chromium_interpreter() {
    let s = server().await;
    let tone = wav(880.0);
    let interpreter = s.app.mint("r", Role::Interpreter, Some("es".into()), "Ana", None).url;
    let listener = s.app.mint("r", Role::Listener, None, "Lena", None).url;
    let shots = std::env::var("TOLK_SCREENSHOTS").unwrap_or_default();
    let result = node("e2e.mjs", &[&interpreter, &listener, tone.to_str().unwrap(), "es", &shots]).await;
    let _ = std::fs::remove_file(&tone);
    println!("listener analyser: {result}");
    assert!(
        (peak(&result) - 880.0).abs() < 25.0,
        "the listener's loudest frequency is {:.0} Hz, not 880 Hz",
        peak(&result)
    );
    assert!(level(&result, "880") > -60.0, "880 Hz too quiet: {result}");
    assert!(level(&result, "880") - level(&result, "1320") > 20.0, "no other tone: {result}");
    // The interpreter publishes full band (Chromium's default is 32 kbit/s), and the listener hears RED.
    let kbps = result["publishKbps"].as_f64().unwrap_or(0.0);
    assert!(kbps >= 80.0, "the interpreter sends {kbps} kbit/s: {result}");
    assert_eq!(result["red"], true, "RED agreed with the listener: {result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handover_clicked_in_two_consoles_changes_what_the_listener_hears() {
    let s = server().await;
    let (wa, wb) = (wav(880.0), wav(990.0));
    let a = s.app.mint("r", Role::Interpreter, Some("es".into()), "Ana", None).url;
    let b = s.app.mint("r", Role::Interpreter, Some("es".into()), "Bea", None).url;
    let listener = s.app.mint("r", Role::Listener, None, "Lena", None).url;
    let shots = std::env::var("TOLK_SCREENSHOTS").unwrap_or_default();
    let result =
        node("booth.mjs", &[&a, &b, &listener, wa.to_str().unwrap(), wb.to_str().unwrap(), "es", &shots])
            .await;
    let _ = std::fs::remove_file(&wa);
    let _ = std::fs::remove_file(&wb);
    println!("listener before and after the handover: {result}");
    let (before, after) = (&result["before"], &result["after"]);
    assert!((peak(before) - 880.0).abs() < 25.0, "Ana's 880 Hz before the handover: {before}");
    assert!((peak(after) - 990.0).abs() < 25.0, "Bea's 990 Hz after the handover: {after}");
    assert!(level(after, "990") - level(after, "880") > 20.0, "Ana off air: {after}");
}

/// The booth chat in the pages: a line to the booth reaches its partner and nobody else
/// (another booth, the host, a listener), shown as text, large when asked, without taking the
/// partner's focus; a host's line reaches every booth and no listener; a console whose page
/// reloads shows the last lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn booth_chat_in_the_consoles_and_the_host_page() {
    let s = server().await;
    let tone = wav(880.0);
    let url = |role, channel: Option<&str>, name: &str| {
        s.app.mint("r", role, channel.map(str::to_string), name, None).url
    };
    let (a, b, c) = (
        url(Role::Interpreter, Some("es"), "Ana"),
        url(Role::Interpreter, Some("es"), "Bea"),
        url(Role::Interpreter, Some("fr"), "Cleo"),
    );
    let (host, listener) = (url(Role::Host, None, "Hana"), url(Role::Listener, None, "Lena"));
    let shots = std::env::var("TOLK_SCREENSHOTS").unwrap_or_default();
    let r = node("chat.mjs", &[&a, &b, &c, &host, &listener, tone.to_str().unwrap(), &shots]).await;
    let _ = std::fs::remove_file(&tone);
    println!("booth chat: {r}");
    assert_eq!(r["bFocus"]["id"], "chat-text", "the partner keeps its focus: {r}");
    assert_eq!(r["bFocus"]["value"], "half a sen", "and what it was typing: {r}");
    assert_eq!(r["asText"]["elements"], 0, "markup is shown as text: {r}");
    assert_eq!(r["asText"]["pwned"], false, "no script ran: {r}");
    assert_eq!(r["asText"]["big"], true, "a term asked large is large: {r}");
    for who in ["c", "host", "listener"] {
        assert_eq!(r["leaked"][who], false, "{who} saw the booth's own thread: {r}");
    }
    assert_eq!(r["reach"]["allAtListener"], false, "no chat at the listener: {r}");
    assert_eq!(r["reach"]["hostLineAtB"], true, "the booth sees its host line: {r}");
    assert_eq!(r["reach"]["hostLineAtC"], false, "another booth does not: {r}");
    assert!(r["afterReload"].as_array().unwrap().len() >= 3, "the last lines after a reload: {r}");
}

/// Recording from the host page: the listener, floor and host pages show it while it runs; the
/// interpreter's console asks for consent, then says the voice is recorded; the host page lists
/// the take with a file per track, and its link downloads Ogg.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_from_the_host_page_is_shown_everywhere_and_asks_the_interpreter() {
    let dir = fresh_dir("recordings");
    let s = server_with(move |c| c.recordings_dir = Some(dir)).await;
    let tone = wav(880.0);
    let url = |role, channel: Option<&str>, name: &str| {
        s.app.mint("r", role, channel.map(str::to_string), name, None).url
    };
    let a = url(Role::Interpreter, Some("es"), "Ana");
    let (host, listener, floor) =
        (url(Role::Host, None, "Hana"), url(Role::Listener, None, "Lena"), url(Role::Floor, None, "Flo"));
    let shots = std::env::var("TOLK_SCREENSHOTS").unwrap_or_default();
    let r = node("record.mjs", &[&a, &host, &listener, &floor, tone.to_str().unwrap(), &shots]).await;
    let _ = std::fs::remove_file(&tone);
    println!("recording: {r}");
    assert!(r["before"]["listener"].is_null() && r["before"]["consent"].is_null(), "nothing before: {r}");
    for page in ["listener", "floor", "host"] {
        assert!(r["during"][page].as_str().unwrap_or("").contains("Recording"), "{page} shows it: {r}");
    }
    assert_eq!(r["during"]["button"], "Stop recording", "{r}");
    assert!(r["during"]["consentAsked"].as_str().unwrap().contains("May your voice be recorded?"), "{r}");
    assert!(r["during"]["console"].as_str().unwrap().contains("not recorded"), "not before consent: {r}");
    assert!(r["agreed"]["console"].as_str().unwrap().contains("your voice is being recorded"), "{r}");
    assert!(r["agreed"]["asked"].is_null(), "the question goes once answered: {r}");
    let names: Vec<&str> =
        r["takes"].as_array().unwrap().iter().map(|t| t["text"].as_str().unwrap()).collect();
    assert!(names.iter().any(|n| n.starts_with("floor")) && names.iter().any(|n| n.starts_with("es")), "{r}");
    assert_eq!(r["file"]["status"], 200, "{r}");
    assert_eq!(r["file"]["magic"], "OggS", "{r}");
    assert!(r["after"].is_null(), "the indicator goes when it stops: {r}");
}

/// The listener page in the person's language: Spanish from the browser's locale, then French
/// chosen on the page and remembered across a reload, Arabic right to left; channel buttons name
/// each language in the listener's; a channel name with markup is shown as text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_page_speaks_the_persons_language_and_arabic_right_to_left() {
    let s = server().await;
    let evil = r#"{"lang":"de","name":"<img src=x onerror=\"window.pwned=1\">"}"#;
    let (st, b) = http(&s, "POST", "/api/rooms/r/channels", Some("test-api-key"), Some(evil)).await;
    assert_eq!(st, 201, "{b}");
    let tone = wav(440.0);
    let listener = s.app.mint("r", Role::Listener, None, "Lena", None).url;
    let shots = std::env::var("TOLK_SCREENSHOTS").unwrap_or_default();
    let r = node("language.mjs", &[&listener, tone.to_str().unwrap(), &shots]).await;
    let _ = std::fs::remove_file(&tone);
    println!("languages: {r}");
    let want = &r["expected"];
    assert_eq!((r["es"]["lang"].as_str(), r["es"]["dir"].as_str()), (Some("es"), Some("ltr")), "{r}");
    assert_eq!(r["es"]["title"], want["es"]["title"], "{r}");
    assert_eq!(r["es"]["start"], want["es"]["start"], "{r}");
    assert_eq!(r["esConnected"]["status"], want["es"]["floor"], "the page says what plays: {r}");
    let buttons = r["esButtons"].to_string();
    assert!(buttons.contains("francés") && buttons.contains("alemán"), "languages named in Spanish: {r}");
    assert_eq!(r["injected"]["images"], 0, "a channel name is text: {r}");
    assert_eq!(r["injected"]["pwned"], false, "{r}");
    assert!(buttons.contains("<img src=x"), "and shown as written: {r}");
    assert_eq!(r["frSwitched"]["title"], want["fr"]["title"], "{r}");
    assert!(r["frButtons"].to_string().contains("espagnol"), "named in French after the switch: {r}");
    assert_eq!(r["frReloaded"]["lang"], "fr", "the choice is remembered: {r}");
    assert_eq!(r["frReloaded"]["start"], want["fr"]["start"], "{r}");
    assert_eq!((r["ar"]["lang"].as_str(), r["ar"]["dir"].as_str()), (Some("ar"), Some("rtl")), "{r}");
    assert_eq!(r["ar"]["title"], want["ar"]["title"], "{r}");
    assert_ne!(r["ar"]["title"], r["es"]["title"], "{r}");
}

/// Accessibility: axe-core finds nothing on any page, before or after joining; a keyboard-only
/// listener starts, switches channel and keeps its focus; the cough button holds by the Space key
/// and by a pointer that wanders off it while the partner's microphone is open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_passes_axe_and_works_by_keyboard_and_a_held_cough() {
    let s = server().await;
    let tone = wav(880.0);
    let url = |role, channel: Option<&str>, name: &str| {
        s.app.mint("r", role, channel.map(str::to_string), name, None).url
    };
    let index = format!("http://{}/", s.http);
    let (listener, a, b) = (
        url(Role::Listener, None, "Lena"),
        url(Role::Interpreter, Some("es"), "Ana"),
        url(Role::Interpreter, Some("es"), "Bea"),
    );
    let (floor, host) = (url(Role::Floor, None, "Flo"), url(Role::Host, None, "Hana"));
    let r = node("a11y.mjs", &[&index, &listener, &a, &b, &floor, &host, tone.to_str().unwrap()]).await;
    let _ = std::fs::remove_file(&tone);
    println!("accessibility: {r}");
    assert_eq!(r["violations"], serde_json::json!({}), "axe-core violations: {r}");
    assert_eq!(r["keyboard"]["startFocused"], "start", "{r}");
    assert_eq!(r["keyboard"]["focusAfterSwitch"], "es", "focus stays on the channel: {r}");
    assert_eq!(r["cough"]["heldByKey"], true, "{r}");
    assert_eq!(r["cough"]["heldByPointer"], true, "the cough holds while the pointer wanders: {r}");
    // The booth's warning comes as a code and is said from the page's catalogue.
    assert!(r["warning"].as_str().unwrap().starts_with("More than one microphone"), "{r}");
}

/// The listener's balance in the page: by keyboard from the channel as mixed to the original
/// only (the floor's 440 Hz, no interpreter) and to the interpretation only (880 Hz, no floor),
/// each said in the status line; the volume; the lock screen names what plays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_balances_original_and_interpretation_by_keyboard() {
    let s = server().await;
    let (floor_tone, voice_tone) = (wav(440.0), wav(880.0));
    let url = |role, channel: Option<&str>, name: &str| {
        s.app.mint("r", role, channel.map(str::to_string), name, None).url
    };
    let (floor, a, listener) = (
        url(Role::Floor, None, "Flo"),
        url(Role::Interpreter, Some("es"), "Ana"),
        url(Role::Listener, None, "Lena"),
    );
    let r = node(
        "listener.mjs",
        &[&floor, &a, &listener, floor_tone.to_str().unwrap(), voice_tone.to_str().unwrap()],
    )
    .await;
    let _ = std::fs::remove_file(&floor_tone);
    let _ = std::fs::remove_file(&voice_tone);
    println!("listener controls: {r}");
    let standard = &r["heard"]["standard"];
    assert!((peak(standard) - 880.0).abs() < 30.0, "the channel as mixed: the interpreter on top: {r}");
    let original = &r["heard"]["original"];
    assert!((peak(original) - 440.0).abs() < 30.0, "the original only: {r}");
    assert!(level(original, "440") - level(original, "880") > 30.0, "no interpreter in the original: {r}");
    let only = &r["heard"]["interpretation"];
    assert!((peak(only) - 880.0).abs() < 30.0, "{r}");
    assert!(level(only, "880") - level(only, "440") > 30.0, "no floor in the interpretation only: {r}");
    assert!(
        level(standard, "440") > level(only, "440") + 20.0,
        "the mix keeps the floor under the voice: {r}"
    );
    assert!(r["said"]["original"].as_str().unwrap().contains("Original only"), "{r}");
    assert!(r["said"]["interpretation"].as_str().unwrap().contains("Interpretation only"), "{r}");
    assert_eq!(r["page"]["volume"], 0.25, "{r}");
    assert_eq!(r["page"]["valuetext"], "Interpretation only", "{r}");
    assert_eq!(r["page"]["lockScreen"], "ES", "the lock screen names the channel: {r}");
}

/// The interpreter's console: the speaking controls on a phone's first screen, a live audience
/// count, the headphones held at -6 dBFS with Volume and Bass at their maximum (measured after
/// the limiter), a silent relay told with the Floor offered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_fits_a_phone_counts_its_audience_and_protects_the_headphones() {
    let s = server().await;
    // A low, loud floor: Bass +12 dB lifts it fully.
    let (floor_tone, voice_tone) = (wav(150.0), wav(880.0));
    let url = |role, channel: Option<&str>, name: &str| {
        s.app.mint("r", role, channel.map(str::to_string), name, None).url
    };
    let (floor, a, b, listener) = (
        url(Role::Floor, None, "Flo"),
        url(Role::Interpreter, Some("es"), "Ana"),
        url(Role::Interpreter, Some("fr"), "Luc"),
        url(Role::Listener, None, "Lena"),
    );
    let shots = std::env::var("TOLK_SCREENSHOTS").unwrap_or_default();
    let r = node(
        "console.mjs",
        &[&floor, &a, &b, &listener, floor_tone.to_str().unwrap(), voice_tone.to_str().unwrap(), &shots],
    )
    .await;
    let _ = std::fs::remove_file(&floor_tone);
    let _ = std::fs::remove_file(&voice_tone);
    println!("console: {r}");
    for id in ["cough", "mute", "ready", "go", "take"] {
        assert_eq!(r["phone"][id]["visible"], true, "{id} on the first screen of a 375x700 phone: {r}");
    }
    assert_eq!(r["audience"]["before"], "0 listeners", "{r}");
    assert_eq!(r["audience"]["after"], "1 listener", "{r}");
    let h = &r["headphones"];
    let (input, out) = (h["inputPeak"].as_f64().unwrap(), h["outputPeak"].as_f64().unwrap());
    // Volume 2 (+6 dB) and Bass +12 dB (at 150 Hz, under the 250 Hz shelf: at least +11 dB)
    // would take the floor well above the ceiling.
    assert!(input * 2.0 * 3.5 > 1.5 * 0.5012, "the test is loud enough to need the limiter: {r}");
    assert!(out <= 0.5012, "never above -6 dBFS: {r}");
    assert!(out > 0.3, "the limiter limits, it does not mute: {r}");
    assert!(r["relay"]["silent"].as_str().unwrap().contains("Nobody is on air"), "{r}");
}

/// The organiser's way in, from host.html without a link to a room that plays: sign in with the
/// API key, create a room, open it as host, make an interpreter link and the audience's link
/// (QR codes drawn), an interpreter and a listener who hears it; a rename reaches the listener;
/// bad, expired and missing links say so when their page opens. axe-core on the organiser's pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organiser_creates_a_room_from_the_host_page_and_it_plays() {
    let s = server().await;
    let (floor_tone, voice_tone) = (wav(440.0), wav(880.0));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let old = tolk::token::Claims {
        room: "r".into(),
        role: Role::Listener,
        channel: None,
        also: vec![],
        name: "Late".into(),
        exp: now - 60,
        jti: "old".into(),
    };
    let expired = format!("http://{}/listen.html#token={}", s.http, s.app.keys().sign(&old));
    let base = format!("http://{}", s.http);
    let shots = std::env::var("TOLK_SCREENSHOTS").unwrap_or_default();
    let r = node(
        "organise.mjs",
        &[
            &base,
            "test-api-key",
            &expired,
            floor_tone.to_str().unwrap(),
            voice_tone.to_str().unwrap(),
            &shots,
        ],
    )
    .await;
    let _ = std::fs::remove_file(&floor_tone);
    let _ = std::fs::remove_file(&voice_tone);
    println!("organiser: {r}");
    assert!(r["listed"].to_string().contains("\"r · EN, ES, FR"), "the existing room is listed: {r}");
    assert!(r["room"].as_str().unwrap().contains("conf"), "the new room's host console: {r}");
    assert!(r["interpreterUrl"].as_str().unwrap().contains("/interpret.html#token="), "{r}");
    assert!(r["listenerUrl"].as_str().unwrap().contains("/listen.html#token="), "{r}");
    assert_eq!(r["qr"]["count"], 2, "{r}");
    assert!(r["qr"]["width"].as_u64().unwrap() >= 200, "{r}");
    assert!(r["expires"].as_str().unwrap().starts_with("Valid until"), "{r}");
    assert!((peak(&r["heard"]) - 880.0).abs() < 30.0, "the listener hears the new room's interpreter: {r}");
    assert!(r["renamed"].as_str().unwrap().contains("Español de España"), "{r}");
    assert!(r["said"]["bad"]["text"].as_str().unwrap().contains("not valid"), "{r}");
    assert!(r["said"]["expired"]["text"].as_str().unwrap().contains("has expired"), "{r}");
    assert!(r["said"]["missing"]["text"].as_str().unwrap().contains("needs an invitation link"), "{r}");
    assert!(r["said"]["revoked"]["text"].as_str().unwrap().contains("was revoked"), "{r}");
    for what in ["bad", "expired", "missing", "revoked"] {
        assert_eq!(r["said"][what]["startDisabled"], true, "{what}: {r}");
    }
    for page in ["signIn", "rooms", "host"] {
        assert_eq!(
            r["violations"][page],
            serde_json::json!([]),
            "axe-core on the organiser's {page} page: {r}"
        );
    }
}

/// A listener settles once it sends its first receiver report: the server drops its WebRTC
/// session and answers its consent checks itself. Chromium drops a connection whose consent
/// checks go unanswered for 30 s (RFC 7675), so it must still be connected, and still hear
/// the tone, more than 30 s after settling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settled_chromium_listener_keeps_playing_past_the_consent_timeout() {
    let s = server().await;
    let tone = wav(880.0);
    let interpreter = s.app.mint("r", Role::Interpreter, Some("es".into()), "Ana", None).url;
    let listener = s.app.mint("r", Role::Listener, None, "Lena", None).url;
    let settled = async {
        let t = std::time::Instant::now();
        while t.elapsed() < Duration::from_secs(60) {
            let (_, body) = http(&s, "GET", "/metrics", Some("test-api-key"), None).await;
            if body.lines().any(|l| l.starts_with("tolk_listeners_settled ") && !l.ends_with(" 0")) {
                return Some(t.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        None
    };
    let args = [&interpreter, &listener, tone.to_str().unwrap(), "es", "", "40"];
    let run = node("e2e.mjs", &args);
    let (result, settled) = tokio::join!(run, settled);
    let _ = std::fs::remove_file(&tone);
    println!("listener analyser: {result}");
    let settled = settled.expect("the listener settles");
    println!("settled {:.1} s after the pages opened", settled.as_secs_f64());
    let later = &result["later"];
    assert_eq!(later["state"], "connected", "the connection outlives the consent timeout: {result}");
    assert!((peak(later) - 880.0).abs() < 25.0, "40 s later the loudest frequency is {:.0} Hz", peak(later));
    assert!(level(later, "880") > -60.0, "880 Hz too quiet 40 s later: {result}");
}

/// A port free on loopback now (for a server that must come back on the same address).
fn free_port(udp: bool) -> u16 {
    if udp {
        std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }
}

/// Crash-only: a floor page, an interpreter console and a listener come back with no click
/// after kill -9 of the server (which restores the room made through the API, with its secret
/// from the data directory, so the old links work), after one page's WebSocket closes, and
/// after the media path is dropped for 5 s (nft in the test's network namespace).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_come_back_by_themselves_after_kill_9_a_closed_socket_and_a_dead_media_path() {
    let dir = fresh_dir("recover");
    let (http, udp) = (free_port(false), free_port(true));
    let config = dir.join("tolk.toml");
    std::fs::write(
        &config,
        format!(
            "http = \"127.0.0.1:{http}\"\nudp = \"127.0.0.1:{udp}\"\nengines = 1\napi_key = \"k\"\ndemo = false\n\
             captions = false\ndata_dir = {:?}\n",
            dir.join("data")
        ),
    )
    .unwrap();
    let (floor, voice) = (wav(440.0), wav(880.0));
    let args = [
        env!("CARGO_BIN_EXE_tolk"),
        config.to_str().unwrap(),
        &format!("127.0.0.1:{http}"),
        &udp.to_string(),
        floor.to_str().unwrap(),
        voice.to_str().unwrap(),
    ];
    let r = node("recover.mjs", &args).await;
    let _ = std::fs::remove_file(&floor);
    let _ = std::fs::remove_file(&voice);
    let _ = std::fs::remove_dir_all(&dir);
    println!("recovery: {r}");
    let ms = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::INFINITY);
    assert!(ms(&r["before"]) < 10_000.0, "the listener hears the interpreter at first: {r}");

    let kill = &r["kill"];
    assert!(ms(&kill["noticedMs"]) < 2_000.0, "the listener shows it is reconnecting at once: {kill}");
    assert!(ms(&kill["heardMs"]) < 10_000.0, "heard again within 10 s of the restart: {kill}");
    assert_eq!(kill["listenerChannel"], "es", "the listener is back on its channel: {kill}");
    assert!((ms(&kill["interpreterHearsFloor"]) - 440.0).abs() < 25.0, "the floor publishes again: {kill}");
    let room = &kill["room"];
    assert_eq!(room["floor"]["sources"], 1, "one floor source, not two: {room}");
    assert_eq!(room["channels"][0]["name"], "Español", "the room made through the API is back: {room}");
    assert_eq!(room["channels"][1]["name"], "Français", "with the channel added through the API: {room}");
    assert_eq!(room["channels"][0]["members"].as_array().map(Vec::len), Some(1), "one interpreter: {room}");

    let (l, i) = (&r["listenerSocket"], &r["interpreterSocket"]);
    assert!(ms(&l["noticedMs"]) < 2_000.0 && ms(&l["heardMs"]) < 10_000.0, "listener socket: {l}");
    assert!(ms(&i["noticedMs"]) < 2_000.0 && ms(&i["liveMs"]) < 10_000.0, "interpreter socket: {i}");
    assert!(ms(&i["heardMs"]) < 10_000.0, "the interpreter is heard again: {i}");

    let b = &r["blackhole"];
    assert_eq!(b["silentDuring"], true, "the blackhole does cut the media: {b}");
    assert!(ms(&b["heardMs"]) < 10_000.0, "heard again within 10 s of the path coming back: {b}");
    assert_eq!(b["listenerState"], "connected", "{b}");
}

/// A Chromium listener allowed only relayed candidates (`iceTransportPolicy: "relay"`, as on a
/// network that reaches nothing but the TURN server) hears its channel through a coturn started
/// here on loopback, with the credentials tolk handed out in `joined`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_only_chromium_listener_hears_through_coturn() {
    let port = free_port(true);
    let secret = "a coturn secret for the test";
    let _turn = tokio::process::Command::new("turnserver")
        .args(["-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", "--allow-loopback-peers"])
        .args(["--use-auth-secret", "--realm=tolk", "--no-tls", "--no-dtls", "--no-cli", "--log-file=stdout"])
        .arg(format!("--static-auth-secret={secret}"))
        .arg(format!("--listening-port={port}"))
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("coturn's turnserver runs (apt-get install coturn; ./tolk.sh test does it)");
    let s = server_with(|c| {
        c.turn = Some(tolk::config::TurnConfig {
            urls: vec![format!("turn:127.0.0.1:{port}?transport=udp")],
            secret: secret.into(),
            ttl_secs: 600,
        })
    })
    .await;
    let tone = wav(880.0);
    let interpreter = s.app.mint("r", Role::Interpreter, Some("es".into()), "Ana", None).url;
    let listener = s.app.mint("r", Role::Listener, None, "Lena", None).url;
    let args = [interpreter.as_str(), &listener, tone.to_str().unwrap(), "es"];
    let result = node_with("e2e.mjs", &args, &[("TOLK_RELAY", "1")]).await;
    let _ = std::fs::remove_file(&tone);
    println!("relayed listener: {result}");
    assert_eq!(result["path"]["local"], "relay", "the media came through the relay: {result}");
    assert!((peak(&result) - 880.0).abs() < 25.0, "the relayed listener hears 880 Hz: {result}");
    assert!(level(&result, "880") > -60.0, "{result}");
}

/// With every UDP packet to the media port dropped (nft, in the test's namespace), the pages
/// connect over ICE-TCP to the same port number and the listener hears the interpreter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chromium_listener_whose_udp_is_dropped_hears_over_ice_tcp() {
    let s = server_with(|c| c.engines = Some(1)).await;
    let udp = s.udp.port().to_string();
    let table = format!("no_udp_{udp}");
    let nft = |args: &[&str]| {
        let ok = std::process::Command::new("nft")
            .args(args)
            .status()
            .expect("nft runs (apt-get install nftables)");
        assert!(ok.success(), "nft {args:?}");
    };
    nft(&["add", "table", "inet", &table]);
    nft(&["add", "chain", "inet", &table, "in", "{ type filter hook input priority 0; }"]);
    nft(&["add", "rule", "inet", &table, "in", "udp", "dport", &udp, "drop"]);
    let tone = wav(880.0);
    let interpreter = s.app.mint("r", Role::Interpreter, Some("es".into()), "Ana", None).url;
    let listener = s.app.mint("r", Role::Listener, None, "Lena", None).url;
    let result = node("e2e.mjs", &[&interpreter, &listener, tone.to_str().unwrap(), "es"]).await;
    nft(&["delete", "table", "inet", &table]);
    let _ = std::fs::remove_file(&tone);
    println!("listener over TCP: {result}");
    assert_eq!(result["path"]["protocol"], "tcp", "the media came over TCP: {result}");
    assert!((peak(&result) - 880.0).abs() < 25.0, "the listener hears 880 Hz over TCP: {result}");
    assert!(level(&result, "880") > -60.0, "{result}");
}

/// The pages as deployed: Chromium on `https://localhost` through nginx with TLS (a certificate
/// made here), using the server block in deploy/nginx.conf as the README gives it; the
/// WebSocket goes through the proxy, the listener hears the interpreter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_work_through_the_nginx_tls_proxy_of_the_readme() {
    let s = server().await;
    let dir = fresh_dir("nginx");
    let port = free_port(false);
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost", "-keyout"])
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .expect("openssl runs");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let site = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx.conf"))
        .unwrap()
        .replace("listen 443 ssl;", &format!("listen 127.0.0.1:{port} ssl;"))
        .replace("listen [::]:443 ssl;", "")
        .replace("tolk.example.org;", "localhost;")
        .replace(
            "/etc/letsencrypt/live/tolk.example.org/fullchain.pem",
            dir.join("cert.pem").to_str().unwrap(),
        )
        .replace("/etc/letsencrypt/live/tolk.example.org/privkey.pem", dir.join("key.pem").to_str().unwrap())
        .replace("127.0.0.1:8080", &s.http.to_string());
    let d = dir.display();
    // One process, as the calling user (the test's namespace maps it to root).
    let conf = format!(
        "master_process off;\nuser root root;\ndaemon off;\npid {d}/nginx.pid;\nerror_log stderr;\nevents {{}}\n\
         http {{\naccess_log off;\nclient_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\n{site}\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let _nginx = tokio::process::Command::new("nginx")
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-p")
        .arg(&dir)
        .kill_on_drop(true)
        .spawn()
        .expect("nginx runs (apt-get install nginx-light; ./tolk.sh test does it)");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let https =
        |url: String| url.replace(&format!("http://{}", s.http), &format!("https://localhost:{port}"));
    let interpreter = https(s.app.mint("r", Role::Interpreter, Some("es".into()), "Ana", None).url);
    let listener = https(s.app.mint("r", Role::Listener, None, "Lena", None).url);
    let tone = wav(880.0);
    let result = node("e2e.mjs", &[&interpreter, &listener, tone.to_str().unwrap(), "es"]).await;
    let _ = std::fs::remove_file(&tone);
    let _ = std::fs::remove_dir_all(&dir);
    println!("through nginx: {result}");
    assert_eq!(result["origin"], format!("https://localhost:{port}"), "{result}");
    assert!((peak(&result) - 880.0).abs() < 25.0, "the listener hears 880 Hz through the proxy: {result}");
    assert!(level(&result, "880") > -60.0, "{result}");
}
