//! A time server's answer, any bytes: sntpc reads it as the agent's query
//! does, then the agent judges it (`clock::judge_answer`). Must never panic;
//! a sample that counts must be finite and have a round trip that is not
//! negative.
//!
//! The answer's origin timestamp (bytes 24..32) is overwritten with the
//! request's transmit timestamp when the input is long enough, as an honest
//! server echoes it: otherwise almost every input would stop at sntpc's first
//! check and the fuzzer would never reach the agent's own.
#![no_main]

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use rampart_agent::clock::judge_answer;
use sntpc::{NtpContext, NtpUdpSocket, StdTimestampGen};

const SERVER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 123);

struct Replay<'a> {
    answer: &'a [u8],
    sent: Mutex<Vec<u8>>,
    received: Mutex<Vec<u8>>,
}

impl NtpUdpSocket for Replay<'_> {
    async fn send_to(&self, buf: &[u8], _addr: SocketAddr) -> sntpc::Result<usize> {
        *self.sent.lock().unwrap() = buf.to_vec();
        Ok(buf.len())
    }

    async fn recv_from(&self, buf: &mut [u8]) -> sntpc::Result<(usize, SocketAddr)> {
        let mut answer = self.answer.to_vec();
        let sent = self.sent.lock().unwrap();
        if answer.len() >= 32 && sent.len() >= 48 {
            answer[24..32].copy_from_slice(&sent[40..48]);
        }
        let n = answer.len().min(buf.len());
        buf[..n].copy_from_slice(&answer[..n]);
        *self.received.lock().unwrap() = answer[..n.min(48)].to_vec();
        Ok((n, SERVER))
    }
}

/// The replay socket never waits, so one poll finishes the exchange.
fn run<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the replayed exchange waited"),
    }
}

fuzz_target!(|data: &[u8]| {
    let socket = Replay {
        answer: data,
        sent: Mutex::default(),
        received: Mutex::default(),
    };
    let context = NtpContext::new(StdTimestampGen::default());
    let answer = run(sntpc::get_time(SERVER, &socket, context));
    let raw = socket.received.lock().unwrap().clone();
    if let Ok(sample) = judge_answer(answer, &raw) {
        assert!(sample.offset_ms.is_finite(), "{sample:?}");
        assert!(sample.rtt_ms.is_finite() && sample.rtt_ms >= 0.0, "{sample:?}");
    }
});
