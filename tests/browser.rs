//! Real browsers: headless Chromium (playwright-core) runs the interpreter page with a fake
//! microphone playing 880 Hz and the listener page on that channel; the listener's WebAudio
//! analyser must hear 880 Hz.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tolk::protocol::Role;

/// 48 kHz mono 16-bit WAV of a sine tone.
fn write_tone_wav(path: &Path, hz: f32, secs: f32) {
    let n = (RATE * secs) as usize;
    let mut data = Vec::with_capacity(44 + n * 2);
    let header_len = 36 + n as u32 * 2;
    data.extend_from_slice(b"RIFF");
    data.extend_from_slice(&header_len.to_le_bytes());
    data.extend_from_slice(b"WAVEfmt ");
    data.extend_from_slice(&16u32.to_le_bytes());
    data.extend_from_slice(&1u16.to_le_bytes()); // PCM
    data.extend_from_slice(&1u16.to_le_bytes()); // mono
    data.extend_from_slice(&48_000u32.to_le_bytes());
    data.extend_from_slice(&96_000u32.to_le_bytes());
    data.extend_from_slice(&2u16.to_le_bytes());
    data.extend_from_slice(&16u16.to_le_bytes());
    data.extend_from_slice(b"data");
    data.extend_from_slice(&(n as u32 * 2).to_le_bytes());
    for i in 0..n {
        let s = 0.3 * (2.0 * std::f32::consts::PI * hz * i as f32 / RATE).sin();
        data.extend_from_slice(&((s * 32767.0) as i16).to_le_bytes());
    }
    std::fs::write(path, data).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_listener_hears_chromium_interpreter() {
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

    let s = server().await;
    let wav: PathBuf = std::env::temp_dir().join(format!("tolk-e2e-{}.wav", std::process::id()));
    write_tone_wav(&wav, 880.0, 10.0);
    let interpreter = s.app.mint("r", Role::Interpreter, Some("es".into()), "Ana", None).url;
    let listener = s.app.mint("r", Role::Listener, None, "Lena", None).url;
    let shots = std::env::var("TOLK_SCREENSHOTS").unwrap_or_default();

    let run = tokio::process::Command::new("node")
        .arg(dir.join("e2e.mjs"))
        .args([&interpreter, &listener, wav.to_str().unwrap(), "es", &shots])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("browser test finishes")
        .expect("node runs");
    let _ = std::fs::remove_file(&wav);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "browser test failed:\n{stderr}\n{stdout}");
    let result: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("a JSON result line");
    println!("listener analyser: {result}");
    let peak = result["peakHz"].as_f64().unwrap();
    let at = |hz: &str| result["levels"][hz].as_f64().unwrap_or(-200.0);
    assert!(
        (peak - 880.0).abs() < 25.0,
        "the listener's loudest frequency is {peak:.0} Hz, not the interpreter's 880 Hz\n{stderr}"
    );
    assert!(at("880") > -60.0, "880 Hz too quiet: {:.1} dB", at("880"));
    assert!(at("880") - at("1320") > 20.0, "no other tone: {result}");
}
