//! Depot's black-box integration tests: real broker processes, real sled in
//! temporary directories, real clients over loopback TCP.

mod harness;

mod cli;
mod crash;
mod durability;
mod produce;
mod protocol;
mod retention;
mod stations;
mod subscribe;
mod users;
