//! Compressed request bodies (`Content-Encoding`): batches and single
//! messages in gzip, deflate, br and zstd land decompressed; the body
//! limits hold for what a body decompresses to; unknown and broken
//! encodings are refused and store nothing.

use std::io::Write;

use serde_json::{Value, json};

use crate::{
    harness::{ROOT_PASSWORD, fetch_all},
    proxy_harness::{TestProxy, login, post},
};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        encoder.write_all(data).unwrap();
    }
    out
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

#[actix_rt::test]
async fn compressed_bodies_are_stored_decompressed_within_the_limits() {
    let proxy = TestProxy::embedded(&[]);
    let (jwt, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    let auth = format!("Bearer {jwt}");
    let send = |path: &str, encoding: &'static str, body: Vec<u8>| {
        let url = proxy.url(path);
        let auth = auth.clone();
        async move {
            post(
                &url,
                &[
                    ("Authorization", auth.as_str()),
                    ("Content-Type", "application/json"),
                    ("Content-Encoding", encoding),
                ],
                body,
            )
            .await
        }
    };

    // Noise that gzip cannot shrink much: the compressed body is larger
    // than what is decompressed inline, so the blocking pool does it.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let batch: Vec<Value> = (0..5000)
        .map(|n| {
            let noise: String = (0..4)
                .map(|_| {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1);
                    format!("{state:016x}")
                })
                .collect();
            json!({"n": n, "noise": noise})
        })
        .collect();
    let batch = gzip(&serde_json::to_vec(&batch).unwrap());
    assert!(batch.len() > 64 * 1024, "{} bytes", batch.len());
    let answer = send("/stations/packed/produce/batch", "gzip", batch).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["sent"], 5000);
    for (encoding, body) in [
        ("deflate", deflate(br#"{"via":"deflate"}"#)),
        ("br", brotli(br#"{"via":"br"}"#)),
        ("zstd", zstd(br#"{"via":"zstd"}"#)),
        ("identity", br#"{"via":"identity"}"#.to_vec()),
    ] {
        let answer = send("/stations/packed/produce/single", encoding, body).await;
        assert_eq!(answer.status, 200, "{encoding}: {}", answer.body);
    }

    // Two MiB of zeros is a couple of KiB of gzip: over the 1 MiB limit
    // once decompressed, so refused without being held whole.
    let bomb = gzip(&vec![b'0'; 2 * 1024 * 1024]);
    assert!(bomb.len() < 16 * 1024);
    let answer = send("/stations/packed/produce/single", "gzip", bomb).await;
    assert_eq!(answer.status, 413, "{}", answer.body);
    let answer = send(
        "/stations/packed/produce/single",
        "gzip",
        b"not gzip".to_vec(),
    )
    .await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(
        answer.body["error"]
            .as_str()
            .unwrap()
            .contains("not valid gzip")
    );
    let answer = send(
        "/stations/packed/produce/single",
        "compress",
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(answer.status, 415, "{}", answer.body);
    assert!(answer.body["error"].as_str().unwrap().contains("gzip"));

    let stored = fetch_all(&proxy.broker_client().await, "packed", 0).await;
    assert_eq!(stored.len(), 5004, "the refused bodies stored nothing");
    assert_eq!(
        serde_json::from_slice::<Value>(&stored[4999].payload).unwrap()["n"],
        4999
    );
    assert!(
        stored[5000]
            .headers
            .iter()
            .all(|h| h.key != "content-encoding"),
        "the payload is stored decompressed, so the header does not go with it"
    );
    let vias: Vec<&[u8]> = stored[5000..].iter().map(|m| &m.payload[..]).collect();
    assert_eq!(
        vias,
        [
            &br#"{"via":"deflate"}"#[..],
            br#"{"via":"br"}"#,
            br#"{"via":"zstd"}"#,
            br#"{"via":"identity"}"#
        ]
    );
}
