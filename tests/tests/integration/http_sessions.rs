//! Tokens and sessions against real `depot-proxy` processes: forged and
//! expired tokens, and sessions ended by a password change, a deleted
//! user or a logout, on every proxy at once.

use base64::Engine as _;
use depot_schemas::wire::{CreateUser, Permissions, UpdateUser};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::{
    harness::{ROOT_PASSWORD, TestBroker, fetch_all},
    proxy_harness::{JSON, TestProxy, bearer, login, post, producer_anywhere, send},
};

fn forged(claims: serde_json::Value, key: &[u8], algorithm: Algorithm) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        &claims,
        &EncodingKey::from_secret(key),
    )
    .unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[actix_rt::test]
async fn token_attacks_get_401() {
    let proxy = TestProxy::embedded(&[]);
    let (jwt, refresh) = login(&proxy, "root", ROOT_PASSWORD).await;
    let key = proxy.broker_client().await.signing_key().await.unwrap().key;
    let claims = |typ: &str, exp: u64| json!({"sub": "root", "typ": typ, "iat": now(), "exp": exp, "jti": "x"});

    let unsigned = {
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"alg":"none","typ":"JWT"}"#);
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(claims("access", now() + 600).to_string());
        format!("{header}.{payload}.")
    };
    let wrong_key = forged(
        claims("access", now() + 600),
        b"not the broker's key at all!!!!!",
        Algorithm::HS256,
    );
    let expired = forged(claims("access", now() - 5), &key, Algorithm::HS256);
    let other_algorithm = forged(claims("access", now() + 600), &key, Algorithm::HS512);
    let tampered = {
        let parts: Vec<&str> = jwt.split('.').collect();
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
            json!({"sub": "root", "typ": "access", "iat": now(), "exp": now() + 99999, "jti": "y"})
                .to_string(),
        );
        format!("{}.{payload}.{}", parts[0], parts[2])
    };

    let url = proxy.url("/stations/attacked/produce/single");
    for (what, token) in [
        ("alg none", unsigned.as_str()),
        ("wrong key", &wrong_key),
        ("expired", &expired),
        ("HS512", &other_algorithm),
        ("tampered", &tampered),
        ("refresh as access", &refresh),
    ] {
        let (name, value) = bearer(token);
        let answer = post(&url, &[(name, &value), JSON], "{}").await;
        assert_eq!(answer.status, 401, "{what}: {}", answer.body);
        assert_eq!(answer.body["success"], false, "{what}");
    }
    let missing = post(&url, &[JSON], "{}").await;
    assert_eq!(missing.status, 401);

    // An access token is no refresh token.
    let (name, value) = bearer(&jwt);
    assert_eq!(
        post(&proxy.url("/auth/refreshToken"), &[(name, &value)], "")
            .await
            .status,
        401
    );
    // A refresh token is single use (and may come in the body).
    let body = json!({ "jwt_refresh_token": refresh }).to_string();
    assert_eq!(
        post(&proxy.url("/auth/refreshToken"), &[JSON], body.clone())
            .await
            .status,
        200
    );
    let reused = post(&proxy.url("/auth/refreshToken"), &[JSON], body).await;
    assert_eq!(reused.status, 401);
    assert_eq!(reused.body["error"], "the refresh token was already used");
    // Requested lifetimes are capped (24 hours by default).
    let long = post(
        &proxy.url("/auth/authenticate"),
        &[JSON],
        json!({"username": "root", "password": ROOT_PASSWORD, "token_expiry_in_minutes": 100_000})
            .to_string(),
    )
    .await;
    assert_eq!(long.body["expires_in"], 24 * 3600 * 1000);
    // Wrong credentials.
    let wrong = post(
        &proxy.url("/auth/authenticate"),
        &[JSON],
        r#"{"username":"root","password":"no"}"#,
    )
    .await;
    assert_eq!(wrong.status, 401);

    // Browsers may pass the token in the query; no station was touched.
    let with_query = post(&format!("{url}?authorization={jwt}"), &[JSON], "{}").await;
    assert_eq!(with_query.body["offset"], 0);
}

/// Single produces of one user with several tokens at once share broker
/// calls; when one of the tokens' sessions was ended, only its requests
/// are refused, and only the others' messages are stored.
#[actix_rt::test]
async fn an_ended_session_is_refused_alone_among_its_users_concurrent_produces() {
    let proxy = TestProxy::embedded(&[]);
    let root = proxy.broker_client().await;
    let (ended, _) = producer_login(&root, &proxy, "many").await;
    let (also_ended, _) = login(&proxy, "many", "many-password").await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    root.end_sessions("many").await.unwrap();
    let (valid, _) = login(&proxy, "many", "many-password").await;

    let url = proxy.url("/stations/mixed/produce/single");
    let send = |jwt: &str, n: usize| {
        let (name, value) = bearer(jwt);
        let url = url.clone();
        async move {
            let answer = post(
                &url,
                &[(name, value.as_str()), JSON],
                format!("{{\"n\":{n}}}"),
            )
            .await;
            (n, answer)
        }
    };
    let answers = futures::future::join_all((0..150).map(|n| match n % 3 {
        0 => futures::future::Either::Left(send(&valid, n)),
        1 => futures::future::Either::Right(send(&ended, n)),
        _ => futures::future::Either::Right(send(&also_ended, n)),
    }))
    .await;
    let mut stored_ns = Vec::new();
    for (n, answer) in &answers {
        if n % 3 == 0 {
            assert_eq!(answer.status, 200, "request {n}: {}", answer.body);
            stored_ns.push(*n as u64);
        } else {
            assert_eq!(answer.status, 401, "request {n}: {}", answer.body);
        }
    }
    let stored = fetch_all(&root, "mixed", 0).await;
    let mut got: Vec<u64> = stored
        .iter()
        .map(|m| {
            let payload: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
            payload["n"].as_u64().unwrap()
        })
        .collect();
    got.sort_unstable();
    assert_eq!(got, stored_ns);
}

/// The proxy remembers verified tokens; a remembered token still expires.
#[actix_rt::test]
async fn an_accepted_token_is_refused_once_it_expires() {
    let proxy = TestProxy::embedded(&[]);
    let key = proxy.broker_client().await.signing_key().await.unwrap().key;
    let exp = now() + 2;
    let claims = json!({"sub": "root", "typ": "access", "iat": now(), "exp": exp, "jti": "short"});
    let token = forged(claims, &key, Algorithm::HS256);
    let (name, value) = bearer(&token);
    let url = proxy.url("/stations/short-lived/produce/single");
    let accepted = post(&url, &[(name, &value), JSON], "{}").await;
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    // Twice: the second time from the proxy's memory of verified tokens.
    let again = post(&url, &[(name, &value), JSON], "{}").await;
    assert_eq!(again.status, 200, "{}", again.body);
    while now() <= exp {
        actix_rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let expired = post(&url, &[(name, &value), JSON], "{}").await;
    assert_eq!(expired.status, 401, "{}", expired.body);
    assert_eq!(expired.body["error"], "the token has expired");
}

#[actix_rt::test]
async fn a_deleted_users_tokens_stop_working() {
    let proxy = TestProxy::embedded(&[]);
    let root = proxy.broker_client().await;
    root.create_user(CreateUser {
        password: "leaver-password".into(),
        ..producer_anywhere("leaver")
    })
    .await
    .unwrap();
    let (jwt, refresh) = login(&proxy, "leaver", "leaver-password").await;
    root.delete_user("leaver").await.unwrap();

    let (name, value) = bearer(&jwt);
    let url = proxy.url("/stations/gone/produce/single");
    assert_eq!(post(&url, &[(name, &value), JSON], "{}").await.status, 403);
    let (name, value) = bearer(&refresh);
    let refreshed = post(&proxy.url("/auth/refreshToken"), &[(name, &value)], "").await;
    assert_eq!(refreshed.status, 401, "{}", refreshed.body);
}

/// A changed password ends the sessions opened with the old one: their
/// refresh tokens are refused (a stolen one cannot be rotated forever);
/// a login with the new password refreshes as usual. Remote proxies ask
/// the same broker, so this holds for them too.
#[actix_rt::test]
async fn a_password_change_revokes_earlier_refresh_tokens() {
    let proxy = TestProxy::embedded(&[]);
    let root = proxy.broker_client().await;
    root.create_user(CreateUser {
        password: "old-password".into(),
        ..producer_anywhere("mover")
    })
    .await
    .unwrap();
    let (_, old_refresh) = login(&proxy, "mover", "old-password").await;
    let refresh = |token: String| {
        let url = proxy.url("/auth/refreshToken");
        async move {
            let (name, value) = bearer(&token);
            post(&url, &[(name, value.as_str())], "").await
        }
    };
    // A change of permissions only leaves sessions alone.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    root.update_user(UpdateUser {
        name: "mover".into(),
        permissions: Some(Permissions {
            produce: vec!["moves.*".into()],
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let still = refresh(old_refresh).await;
    assert_eq!(still.status, 200, "{}", still.body);
    let old_refresh = still.body["jwt_refresh_token"].as_str().unwrap().to_owned();

    change_password_later(&root, "mover", "new-password").await;
    let refused = refresh(old_refresh).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    let error = refused.body["error"].as_str().unwrap();
    assert!(error.contains("authenticate again"), "{error}");

    let (_, new_refresh) = login(&proxy, "mover", "new-password").await;
    assert_eq!(refresh(new_refresh).await.status, 200);
}

#[actix_rt::test]
async fn a_password_change_ends_earlier_access_tokens_at_once_embedded() {
    let proxy = TestProxy::embedded(&[]);
    let root = proxy.broker_client().await;
    access_tokens_end_with_a_password_change(&proxy, &root).await;
}

#[actix_rt::test]
async fn a_password_change_ends_earlier_access_tokens_at_once_remote() {
    let broker = TestBroker::start();
    let proxy = TestProxy::remote(broker.addr, &[]);
    let root = broker.client().await;
    access_tokens_end_with_a_password_change(&proxy, &root).await;
}

/// An access token issued before its user's password changed is refused on
/// every kind of route from then on (not when it expires); a new login
/// works, and nothing the old token sent after the change is stored.
async fn access_tokens_end_with_a_password_change(
    proxy: &TestProxy,
    root: &depot_broker::client::BrokerClient,
) {
    root.create_user(CreateUser {
        password: "old-password".into(),
        permissions: Some(Permissions {
            produce: vec!["*".into()],
            consume: vec!["*".into()],
            create_stations: true,
            ..Default::default()
        }),
        ..producer_anywhere("mover")
    })
    .await
    .unwrap();
    let (old_jwt, _) = login(proxy, "mover", "old-password").await;
    let single = |jwt: String, body: &'static str| {
        let url = proxy.url("/stations/moves/produce/single");
        async move {
            let (name, value) = bearer(&jwt);
            post(&url, &[(name, value.as_str()), JSON], body).await
        }
    };
    let first = single(old_jwt.clone(), r#"{"n":0}"#).await;
    assert_eq!(first.status, 200, "{}", first.body);

    change_password_later(root, "mover", "new-password").await;

    let refused = single(old_jwt.clone(), r#"{"n":"late"}"#).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert_eq!(refused.body["success"], false);
    let error = refused.body["error"].as_str().unwrap();
    assert!(error.contains("authenticate again"), "{error}");
    let (name, value) = bearer(&old_jwt);
    let batch = post(
        &proxy.url("/stations/moves/produce/batch"),
        &[(name, value.as_str()), JSON],
        r#"[{"n":"late"}]"#,
    )
    .await;
    assert_eq!(batch.status, 401, "{}", batch.body);
    let described = send("GET", &proxy.url("/stations/moves"), &old_jwt, None).await;
    assert_eq!(described.status, 401, "{}", described.body);

    let (new_jwt, _) = login(proxy, "mover", "new-password").await;
    let second = single(new_jwt.clone(), r#"{"n":1}"#).await;
    assert_eq!(second.status, 200, "{}", second.body);
    let described = send("GET", &proxy.url("/stations/moves"), &new_jwt, None).await;
    assert_eq!(described.status, 200, "{}", described.body);

    let stored = fetch_all(root, "moves", 0).await;
    let payloads: Vec<&[u8]> = stored.iter().map(|m| m.payload.as_ref()).collect();
    assert_eq!(payloads, [&br#"{"n":0}"#[..], &br#"{"n":1}"#[..]]);
}

#[actix_rt::test]
async fn logout_ends_every_session_of_the_user_on_every_proxy() {
    let broker = TestBroker::start();
    let proxy_a = TestProxy::remote(broker.addr, &[]);
    let proxy_b = TestProxy::remote(broker.addr, &[]);
    let root = broker.client().await;
    root.create_user(CreateUser {
        password: "leaver-password".into(),
        ..producer_anywhere("leaver")
    })
    .await
    .unwrap();
    // Two devices, each with its pair, one with a socket open too.
    let (phone, phone_refresh) = login(&proxy_a, "leaver", "leaver-password").await;
    let (laptop, _) = login(&proxy_b, "leaver", "leaver-password").await;
    let (other, _) = producer_login(&root, &proxy_a, "stayer").await;
    let mut socket = crate::websockets::WsClient::authorized(&proxy_a, &phone).await;
    let single = |proxy: &TestProxy, jwt: &str| {
        let url = proxy.url("/stations/devices/produce/single");
        let (name, value) = bearer(jwt);
        async move {
            post(&url, &[(name, value.as_str()), JSON], "{}")
                .await
                .status
        }
    };
    assert_eq!(single(&proxy_a, &phone).await, 200);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    let (name, value) = bearer(&laptop);
    let out = post(&proxy_b.url("/auth/logout"), &[(name, value.as_str())], "").await;
    assert_eq!(out.status, 200, "{}", out.body);
    assert_eq!(out.body, json!({"success": true, "error": null}));

    assert_eq!(single(&proxy_a, &phone).await, 401);
    assert_eq!(single(&proxy_b, &laptop).await, 401);
    let (name, value) = bearer(&phone_refresh);
    let refreshed = post(
        &proxy_b.url("/auth/refreshToken"),
        &[(name, value.as_str())],
        "",
    )
    .await;
    assert_eq!(refreshed.status, 401, "{}", refreshed.body);
    let reason = socket.closed().await;
    assert!(reason.contains("the session is over"), "{reason}");
    // Another user is untouched, and the leaver may log in again.
    assert_eq!(single(&proxy_b, &other).await, 200);
    let (again, _) = login(&proxy_a, "leaver", "leaver-password").await;
    assert_eq!(single(&proxy_b, &again).await, 200);

    // An administrator ends anyone's sessions; nobody else may.
    let denied = broker.cli(&[
        "--user",
        "leaver",
        "--password",
        "leaver-password",
        "users",
        "end-sessions",
        "stayer",
    ]);
    assert!(!denied.status.success());
    let error = String::from_utf8_lossy(&denied.stderr);
    assert!(error.contains("permission denied"), "{error}");
    assert!(
        broker
            .cli_ok(&["users", "end-sessions", "stayer"])
            .contains("ended every session of stayer")
    );
    assert_eq!(single(&proxy_a, &other).await, 401);
    assert_eq!(
        single(&proxy_a, &again).await,
        200,
        "the leaver's new session"
    );

    // The same over HTTP: not with another user's token, but with root's.
    let url = proxy_b.url("/users/leaver/end-sessions");
    let (stayer_again, _) = login(&proxy_a, "stayer", "stayer-password").await;
    let (name, value) = bearer(&stayer_again);
    let refused = post(&url, &[(name, value.as_str())], "").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let (admin, _) = login(&proxy_a, "root", ROOT_PASSWORD).await;
    let (name, value) = bearer(&admin);
    let ended = post(&url, &[(name, value.as_str())], "").await;
    assert_eq!(ended.status, 200, "{}", ended.body);
    assert_eq!(single(&proxy_a, &again).await, 401);
}

/// Creates `name` (password `<name>-password`, producing anywhere) through
/// `root` and logs it in on `proxy`.
async fn producer_login(
    root: &depot_broker::client::BrokerClient,
    proxy: &TestProxy,
    name: &str,
) -> (String, String) {
    let password = format!("{name}-password");
    root.create_user(CreateUser {
        password: password.clone(),
        ..producer_anywhere(name)
    })
    .await
    .unwrap();
    login(proxy, name, &password).await
}

/// Changes `user`'s password a little later than any token issued so far
/// (sessions end by the millisecond).
async fn change_password_later(
    root: &depot_broker::client::BrokerClient,
    user: &str,
    password: &str,
) {
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    root.update_user(UpdateUser {
        name: user.into(),
        password: Some(password.into()),
        ..Default::default()
    })
    .await
    .unwrap();
}
