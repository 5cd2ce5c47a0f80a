//! The loopback ceiling of the wire protocol: a bare TCP server that answers
//! every length-prefixed frame with a small one, doing no other work, with
//! the broker's worker count. Measured in the same run as the broker, it
//! says how many request/answer round trips the machine's loopback and
//! scheduler allow at all before Depot does any work.

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, BufReader},
    net::{
        TcpListener, TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
};

use crate::closed_loop::Producer;

/// The answer: a length prefix and 16 bytes, about a `ProduceResult`.
const ANSWER: [u8; 20] = [
    0, 0, 0, 16, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
];
/// The largest frame the server reads (anything longer ends the connection).
const MAX_FRAME: usize = 64 * 1024;

/// Serves until killed.
pub fn serve(listen: &str) -> std::io::Result<()> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?
        .block_on(async {
            let listener = TcpListener::bind(listen).await?;
            println!("bare-tcp listening on {}", listener.local_addr()?);
            loop {
                let (stream, _) = listener.accept().await?;
                tokio::spawn(answer_frames(stream));
            }
        })
}

async fn answer_frames(stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (read_half, mut write_half) = stream.into_split();
    let mut reader = BufReader::new(read_half);
    let mut frame = vec![0; MAX_FRAME];
    loop {
        let length = reader.read_u32().await? as usize;
        let Some(frame) = frame.get_mut(..length) else {
            return Ok(());
        };
        reader.read_exact(frame).await?;
        write_half.write_all(&ANSWER).await?;
    }
}

/// Sends one frame of `payload_bytes` and waits for the answer, in a loop.
pub struct EchoProducer {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    frame: Vec<u8>,
}

impl EchoProducer {
    pub async fn connect(addr: &str, payload_bytes: usize) -> Result<Self, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot reach bare-tcp at {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (read_half, writer) = stream.into_split();
        let payload_bytes = payload_bytes.min(MAX_FRAME);
        let mut frame = (payload_bytes as u32).to_be_bytes().to_vec();
        frame.resize(4 + payload_bytes, b'x');
        Ok(Self {
            reader: BufReader::new(read_half),
            writer,
            frame,
        })
    }
}

impl Producer for EchoProducer {
    async fn round_trip(&mut self) -> Result<u64, String> {
        self.writer
            .write_all(&self.frame)
            .await
            .map_err(|e| e.to_string())?;
        let mut answer = [0; ANSWER.len()];
        self.reader
            .read_exact(&mut answer)
            .await
            .map_err(|e| e.to_string())?;
        Ok(1)
    }
}
