//! The WebSocket connection registry's operations (register, unregister,
//! list, notify). `AttachProxy` is a stream and lives with the session
//! (`connection.rs`), which detaches when it ends.

use depot_schemas::wire::{
    self, notify::Target as WireTarget, request::Op, response::Result as Reply,
};

use crate::{
    auth::Principal,
    broker::Broker,
    connections::Target,
    error::{BrokerError, BrokerResult},
};

/// Runs `op` if it is a connection operation; gives it back otherwise.
pub async fn run(broker: &Broker, who: &Principal, op: Op) -> Result<BrokerResult<Reply>, Op> {
    let done = |()| Reply::Done(wire::Done {});
    let answer = match op {
        Op::RegisterConnection(register) => broker
            .register_connection(who, register.attachment, register.connection, register.user)
            .map(done),
        Op::UnregisterConnection(unregister) => broker
            .unregister_connection(who, &unregister.connection)
            .map(done),
        Op::ListConnections(list) => {
            let user = (!list.user.is_empty()).then_some(list.user.as_str());
            broker.list_connections(who, user).map(|all| {
                Reply::ConnectionList(wire::ConnectionList {
                    connections: all
                        .into_iter()
                        .map(|c| wire::ConnectionInfo {
                            connection: c.id,
                            user: c.user,
                            proxy: c.proxy,
                            connected_at_ms: c.connected_at_ms,
                        })
                        .collect(),
                })
            })
        }
        Op::Notify(notify) => {
            let target = match notify.target {
                Some(WireTarget::User(user)) => Ok(Target::User(user)),
                Some(WireTarget::Connection(id)) => Ok(Target::Connection(id)),
                None => Err(BrokerError::bad_request("notify a user or a connection")),
            };
            target
                .and_then(|target| broker.notify(who, &target, notify.data))
                .map(|delivered| {
                    Reply::Notified(wire::Notified {
                        delivered: delivered as u32,
                    })
                })
        }
        op => return Err(op),
    };
    Ok(answer)
}
