//! Password hashing with argon2id on one dedicated thread.
//!
//! Why a thread of its own, with one reused work area: an argon2 check is
//! slow and memory-hard on purpose (here 7 MiB, 5 passes: OWASP's
//! recommended equivalent of 19 MiB x 2). Run on arbitrary threads, a burst
//! of logins would take that much memory per thread at once, and allocating
//! and freeing such blocks makes glibc raise its mmap threshold for the whole
//! process, after which the allocator keeps tens of megabytes per thread for
//! good. One worker with a buffer allocated once keeps memory flat and
//! bounds the CPU that logins can take from traffic. The buffer is given
//! back once no check has come for [`RELEASE_AFTER`]: a burst of logins
//! reuses it, an idle broker does not hold 7 MiB for the next one (the
//! server binaries run on jemalloc, where freeing it once in a while moves
//! no threshold).
//!
//! Only PHC strings (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`) are ever
//! stored. Checking an unknown user costs the same as a wrong password.

use std::{
    sync::mpsc::{self, RecvTimeoutError},
    time::Duration,
};

use argon2::{Algorithm, Argon2, Block, Params, Version};
use password_hash::{Output, PasswordHash, SaltString};
use tokio::sync::oneshot;

use crate::{
    error::{BrokerError, BrokerResult},
    refusals::{Limit, Refusals},
};

/// Memory per check, in KiB.
const MEMORY_KIB: u32 = 7 * 1024;
/// Passes over the memory.
const PASSES: u32 = 5;
const LANES: u32 = 1;
const OUTPUT_BYTES: usize = 32;
const SALT_BYTES: usize = 16;
/// Salt used to spend the same time on users that do not exist.
const DECOY_SALT: [u8; SALT_BYTES] = [0x5a; SALT_BYTES];
/// Idle time after which the work area is freed (public so that the
/// benchmark knows when an idle broker has given it back).
pub const RELEASE_AFTER: Duration = Duration::from_secs(5);

enum Job {
    Hash {
        secret: String,
        /// Async callers answer through a oneshot, start-up through a std
        /// channel (it runs inside the runtime but must block).
        reply: Box<dyn FnOnce(BrokerResult<String>) + Send>,
    },
    Verify {
        secret: String,
        /// `None`: no such user; spend the time, answer no.
        phc: Option<String>,
        reply: oneshot::Sender<bool>,
    },
}

/// Hashes and checks secrets on the password thread; cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    jobs: mpsc::SyncSender<Job>,
    /// Jobs that may wait at once (the queue's bound).
    max_pending: usize,
    /// Counts the jobs refused for it.
    refusals: Refusals,
}

impl PasswordHasher {
    /// Starts the thread; at most `max_pending` jobs wait for it (more are
    /// refused as busy: a flood of logins cannot queue without bound, nor
    /// make a genuine login wait behind it for minutes).
    pub fn start(max_pending: usize, refusals: Refusals) -> Self {
        let max_pending = max_pending.max(1);
        let (jobs, queue) = mpsc::sync_channel(max_pending);
        std::thread::Builder::new()
            .name("depot-passwords".into())
            .spawn(move || Worker::default().run(queue))
            .expect("spawn the password thread");
        Self {
            jobs,
            max_pending,
            refusals,
        }
    }

    /// A PHC string for a new secret.
    pub async fn hash(&self, secret: String) -> BrokerResult<String> {
        let (sender, answer) = oneshot::channel();
        let reply = Box::new(move |hash| {
            let _ = sender.send(hash);
        });
        self.submit(Job::Hash { secret, reply })?;
        answer.await.map_err(|_| BrokerError::ShuttingDown)?
    }

    /// [`PasswordHasher::hash`] that blocks the calling thread (start-up).
    pub fn hash_blocking(&self, secret: String) -> BrokerResult<String> {
        let (sender, answer) = mpsc::sync_channel(1);
        let reply = Box::new(move |hash| {
            let _ = sender.send(hash);
        });
        self.submit(Job::Hash { secret, reply })?;
        answer.recv().map_err(|_| BrokerError::ShuttingDown)?
    }

    /// Whether `secret` matches the stored PHC string (`None`: no user).
    pub async fn verify(&self, secret: String, phc: Option<String>) -> BrokerResult<bool> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Verify { secret, phc, reply })?;
        answer.await.map_err(|_| BrokerError::ShuttingDown)
    }

    fn submit(&self, job: Job) -> BrokerResult<()> {
        self.jobs.try_send(job).map_err(|error| match error {
            mpsc::TrySendError::Full(_) => {
                self.refusals.count(Limit::MaxPendingLogins);
                BrokerError::LimitReached {
                    reason: format!(
                        "too many logins in progress ({} waiting); try again shortly",
                        self.max_pending
                    ),
                }
            }
            mpsc::TrySendError::Disconnected(_) => BrokerError::ShuttingDown,
        })
    }
}

#[derive(Default)]
struct Worker {
    /// argon2's work area for the default parameters, allocated on first use
    /// and kept until the thread has been idle for [`RELEASE_AFTER`].
    memory: Vec<Block>,
}

fn default_params() -> Params {
    Params::new(MEMORY_KIB, PASSES, LANES, Some(OUTPUT_BYTES)).expect("valid argon2 parameters")
}

impl Worker {
    fn run(mut self, queue: mpsc::Receiver<Job>) {
        loop {
            let job = if self.memory.is_empty() {
                queue.recv().map_err(|_| RecvTimeoutError::Disconnected)
            } else {
                queue.recv_timeout(RELEASE_AFTER)
            };
            match job {
                Ok(Job::Hash { secret, reply }) => reply(self.hash(&secret)),
                Ok(Job::Verify { secret, phc, reply }) => {
                    let _ = reply.send(self.verify(&secret, phc.as_deref()));
                }
                Err(RecvTimeoutError::Timeout) => self.memory = Vec::new(),
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn work_area(&mut self, params: &Params) -> Option<&mut [Block]> {
        if params.block_count() != default_params().block_count() {
            return None;
        }
        if self.memory.is_empty() {
            self.memory = vec![Block::default(); params.block_count()];
        }
        Some(&mut self.memory)
    }

    fn compute(
        &mut self,
        params: Params,
        algorithm: Algorithm,
        version: Version,
        secret: &str,
        salt: &[u8],
        out: &mut [u8],
    ) -> bool {
        let argon2 = Argon2::new(algorithm, version, params.clone());
        let result = match self.work_area(&params) {
            Some(memory) => {
                argon2.hash_password_into_with_memory(secret.as_bytes(), salt, out, memory)
            }
            // A hash made with other parameters (an older default): rare,
            // so its work area is not kept.
            None => argon2.hash_password_into(secret.as_bytes(), salt, out),
        };
        result.is_ok()
    }

    fn hash(&mut self, secret: &str) -> BrokerResult<String> {
        let salt: [u8; SALT_BYTES] = rand::random();
        let mut out = [0u8; OUTPUT_BYTES];
        let params = default_params();
        if !self.compute(
            params.clone(),
            Algorithm::Argon2id,
            Version::V0x13,
            secret,
            &salt,
            &mut out,
        ) {
            return Err(BrokerError::bad_request("the secret cannot be hashed"));
        }
        let salt =
            SaltString::encode_b64(&salt).map_err(|e| BrokerError::bad_request(e.to_string()))?;
        let output = Output::new(&out).map_err(|e| BrokerError::bad_request(e.to_string()))?;
        Ok(format!(
            "$argon2id$v=19$m={},t={},p={}${}${}",
            params.m_cost(),
            params.t_cost(),
            params.p_cost(),
            salt.as_str(),
            output
        ))
    }

    fn verify(&mut self, secret: &str, phc: Option<&str>) -> bool {
        let Some(phc) = phc else {
            let mut out = [0u8; OUTPUT_BYTES];
            self.compute(
                default_params(),
                Algorithm::Argon2id,
                Version::V0x13,
                secret,
                &DECOY_SALT,
                &mut out,
            );
            return false;
        };
        let Ok(hash) = PasswordHash::new(phc) else {
            return false;
        };
        let (Some(expected), Some(salt)) = (hash.hash, hash.salt) else {
            return false;
        };
        let (Ok(params), Ok(algorithm)) =
            (Params::try_from(&hash), Algorithm::try_from(hash.algorithm))
        else {
            return false;
        };
        let version = hash.version.map_or(Ok(Version::V0x13), Version::try_from);
        let Ok(version) = version else {
            return false;
        };
        let mut salt_buffer = [0u8; 64];
        let Ok(salt) = salt.decode_b64(&mut salt_buffer) else {
            return false;
        };
        let mut out = vec![0u8; expected.len()];
        if !self.compute(params, algorithm, version, secret, salt, &mut out) {
            return false;
        }
        // Output's equality is constant-time.
        Output::new(&out).is_ok_and(|computed| computed == expected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_refusals() -> Refusals {
        Refusals::register(&prometheus::Registry::new())
    }

    #[test]
    fn a_hash_verifies_its_secret_only() {
        let hasher = PasswordHasher::start(16, test_refusals());
        let phc = hasher.hash_blocking("correct horse".into()).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"), "{phc}");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            assert!(
                hasher
                    .verify("correct horse".into(), Some(phc.clone()))
                    .await
                    .unwrap()
            );
            assert!(
                !hasher
                    .verify("battery staple".into(), Some(phc))
                    .await
                    .unwrap()
            );
            assert!(!hasher.verify("anything".into(), None).await.unwrap());
            assert!(
                !hasher
                    .verify("x".into(), Some("not a phc".into()))
                    .await
                    .unwrap()
            );
        });
    }

    #[test]
    fn a_full_queue_refuses_at_once_as_busy() {
        let hasher = PasswordHasher::start(2, test_refusals());
        let phc = hasher.hash_blocking("secret".into()).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        // Twenty checks asked at once: the thread takes one, two wait, and
        // the others are refused without waiting (each check takes ms).
        let checks = (0..20).map(|_| hasher.verify("secret".into(), Some(phc.clone())));
        let outcomes = runtime.block_on(futures::future::join_all(checks));
        let busy = outcomes
            .iter()
            .filter(|o| matches!(o, Err(BrokerError::LimitReached { .. })))
            .count();
        let verified = outcomes.iter().filter(|o| matches!(o, Ok(true))).count();
        assert_eq!(busy + verified, 20, "{outcomes:?}");
        // Two wait and one runs; a loaded machine may let the thread finish
        // one while the others are asked, so allow a little more.
        assert!((2..=6).contains(&verified), "{verified} verified");
        let Err(busy) = &outcomes[19] else {
            panic!("the last is refused");
        };
        assert!(busy.to_string().contains("try again"), "{busy}");
        // Once the queue drains, checks are taken again.
        assert!(
            runtime
                .block_on(hasher.verify("secret".into(), Some(phc)))
                .unwrap()
        );
    }

    #[test]
    fn hashes_made_with_other_parameters_still_verify() {
        use argon2::PasswordHasher as _;
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let legacy = Argon2::default()
            .hash_password(b"old", &salt)
            .unwrap()
            .to_string();
        let hasher = PasswordHasher::start(16, test_refusals());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(
            runtime
                .block_on(hasher.verify("old".into(), Some(legacy)))
                .unwrap()
        );
    }
}
