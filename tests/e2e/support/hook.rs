//! Posting to the inbound stage's webhook receiver as HubSpot does (signature v3 computed here
//! from its definition, timestamps, requests cut short), and reading what lands on the HubSpot
//! events topic.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::{ClientConfig, Message};
use serde_json::Value;
use sha2::Sha256;

pub const APP_SECRET: &str = "the-app-client-secret";

/// HubSpot's v3 signature, computed here from its definition.
pub fn sign(secret: &str, url: &str, body: &[u8], timestamp: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("any key");
    mac.update(format!("POST{url}").as_bytes());
    mac.update(body);
    mac.update(timestamp.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub struct Hook {
    pub http: reqwest::Client,
    pub url: String,
}

impl Hook {
    /// Posts `body` signed with `secret` at `timestamp`.
    pub async fn post_as(&self, secret: &str, body: &[u8], timestamp: i64) -> (u16, Value) {
        let timestamp = timestamp.to_string();
        let answer = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-hubspot-request-timestamp", &timestamp)
            .header(
                "x-hubspot-signature-v3",
                sign(secret, &self.url, body, &timestamp),
            )
            .body(body.to_vec())
            .send()
            .await
            .expect("the receiver answers");
        let status = answer.status().as_u16();
        let body = answer.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    pub async fn post(&self, body: &[u8]) -> (u16, Value) {
        self.post_as(APP_SECRET, body, now_ms()).await
    }

    /// Sends a signed request's head and the first KiB of its body only, and reads the answer:
    /// an oversized body is refused on its declared length, before it is sent.
    pub async fn post_head_only(&self, body: &[u8], port: u16) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let timestamp = now_ms().to_string();
        let head = format!(
            "POST /hubspot/webhooks HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\
             X-HubSpot-Request-Timestamp: {timestamp}\r\nX-HubSpot-Signature-v3: {}\r\n\
             Connection: close\r\n\r\n",
            body.len(),
            sign(APP_SECRET, &self.url, body, &timestamp)
        );
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connects");
        stream.write_all(head.as_bytes()).await.expect("head sent");
        stream
            .write_all(&body[..1024.min(body.len())])
            .await
            .expect("a little of the body sent");
        let mut answer = Vec::new();
        let _ =
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let status = answer
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, answer)
    }

    pub fn new(port: u16) -> Hook {
        Hook {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            url: format!("http://127.0.0.1:{port}/hubspot/webhooks"),
        }
    }

    /// Waits until the receiver answers an empty, signed array.
    pub async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + super::STARTUP_TIMEOUT;
        loop {
            let timestamp = now_ms().to_string();
            let answered = self
                .http
                .post(&self.url)
                .header("x-hubspot-request-timestamp", &timestamp)
                .header(
                    "x-hubspot-signature-v3",
                    sign(APP_SECRET, &self.url, b"[]", &timestamp),
                )
                .body("[]")
                .send()
                .await;
            if answered.is_ok_and(|a| a.status().is_success()) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the receiver never answered"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A record of the HubSpot events topic, as read.
pub struct Received {
    pub key: String,
    pub value: Value,
    pub headers: BTreeMap<String, String>,
}

/// Every record on the topic, read until `quiet` passes without a new one (after `at_least`).
pub async fn read_topic(
    brokers: &str,
    topic: &str,
    at_least: usize,
    quiet: Duration,
) -> Vec<Received> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set(
            "group.id",
            format!("read-{}", uuid::Uuid::new_v4().simple()),
        )
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut found = Vec::new();
    loop {
        let wait = if found.len() >= at_least {
            quiet
        } else {
            deadline.saturating_duration_since(tokio::time::Instant::now())
        };
        match tokio::time::timeout(wait, consumer.recv()).await {
            Ok(Ok(message)) => {
                let headers = message
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                let value =
                                    h.value.map(String::from_utf8_lossy).unwrap_or_default();
                                (h.key.to_string(), value.into_owned())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                found.push(Received {
                    key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
                    value: serde_json::from_slice(message.payload().unwrap_or_default())
                        .expect("a JSON event"),
                    headers,
                });
            }
            Ok(Err(error)) => panic!("reading {topic}: {error}"),
            Err(_) => break,
        }
    }
    assert!(
        found.len() >= at_least,
        "{} of {at_least} records on {topic}",
        found.len()
    );
    found
}
