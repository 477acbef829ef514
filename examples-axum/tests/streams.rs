//! `conformance::assert_streams` in a test of your own, as the book shows it: start the app on
//! port 0 and assert that its route streams. The negative control below it collects the body
//! first, and the same check must fail, saying why.

use std::time::Duration;

// ANCHOR: assert_streams
use std::convert::Infallible;

use axum::{Router, body::Body, routing::get};
use futures_util::{Stream, StreamExt, stream};

/// Five lines, 200 ms apart.
fn ticks() -> impl Stream<Item = Result<String, Infallible>> {
    stream::iter(1..=5).then(|k| async move {
        if k > 1 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(format!("{k}\n"))
    })
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

#[tokio::test]
async fn ticks_stream() {
    let app = Router::new().route("/ticks", get(|| async { Body::from_stream(ticks()) }));
    let base = serve(app).await;

    // Panics with the verdict, the reason and the fix if the lines do not arrive one by one.
    let diagnosis = conformance::assert_streams(&format!("{base}/ticks")).await;
    assert_eq!(diagnosis.run.main.judgement.items.len(), 5);
}
// ANCHOR_END: assert_streams

/// The same lines, collected before the response is sent: the check fails and names the cause.
#[tokio::test]
async fn collected_ticks_do_not_stream() {
    let collected = || async { ticks().map(Result::unwrap).collect::<String>().await };
    let base = serve(Router::new().route("/ticks", get(collected))).await;
    let options = conformance::diagnose::Options::for_url(&format!("{base}/ticks"));
    let report = conformance::diagnose::streams(&options).await.expect_err("it is collected");
    assert!(report.contains("\nverdict: buffered\n"), "{report}");
    assert!(report.contains("[cause] collected_body"), "{report}");
}
