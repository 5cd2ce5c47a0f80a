//! Depot's black-box integration tests: real broker processes, real sled in
//! temporary directories, real clients over loopback TCP.

mod harness;

mod audit;
mod broker_metrics;
mod cli;
mod compressed_bodies;
mod console;
mod consumers;
mod crash;
mod dead_letters;
mod durability;
mod http_api;
mod http_connections;
mod http_sessions;
mod https;
mod logging;
mod long_poll;
mod produce;
mod protocol;
mod proxy_harness;
mod purge;
mod relay;
mod retention;
mod scale_out;
mod schemas_http;
mod schemas_json;
mod schemas_protobuf;
mod schemas_versions;
mod sse;
mod stations;
mod stations_http;
mod subscribe;
mod users;
mod webhook_outcomes;
mod webhook_receiver;
mod webhooks;
mod websockets;
mod wire_tls;
mod work_queue_churn;
mod work_queues;
