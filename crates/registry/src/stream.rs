//! A blob download that survives dropped connections by resuming with `Range`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use imgtool_core::{BlobStream, Descriptor};
use tokio::io::{AsyncRead, ReadBuf};

use crate::client::{RegistryClient, count};
use crate::error::Error;

const MAX_RESUMES: u32 = 5;

enum State {
    Opening(BoxFuture<'static, Result<reqwest::Response, Error>>),
    Reading(BoxStream<'static, reqwest::Result<Bytes>>, Bytes),
    Done,
}

pub(crate) struct ResumingBlob {
    client: Arc<RegistryClient>,
    repo: String,
    desc: Descriptor,
    offset: u64,
    resumes: u32,
    state: State,
}

impl ResumingBlob {
    pub fn start(client: Arc<RegistryClient>, repo: String, desc: Descriptor) -> BlobStream {
        let state = State::Opening(Self::open(client.clone(), repo.clone(), desc.clone(), 0));
        Box::pin(Self { client, repo, desc, offset: 0, resumes: 0, state })
    }

    fn open(
        client: Arc<RegistryClient>,
        repo: String,
        desc: Descriptor,
        offset: u64,
    ) -> BoxFuture<'static, Result<reqwest::Response, Error>> {
        async move { client.open_blob_at(&repo, &desc.digest, offset).await }.boxed()
    }

    fn resume(&mut self, why: &dyn std::fmt::Display) -> bool {
        if self.resumes >= MAX_RESUMES || self.offset >= self.desc.size {
            return false;
        }
        self.resumes += 1;
        tracing::info!(digest = %self.desc.digest, offset = self.offset, "connection lost ({why}); resuming");
        self.state = State::Opening(Self::open(self.client.clone(), self.repo.clone(), self.desc.clone(), self.offset));
        true
    }
}

impl AsyncRead for ResumingBlob {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Done => return Poll::Ready(Ok(())),
                State::Opening(fut) => match fut.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(resp)) => this.state = State::Reading(resp.bytes_stream().boxed(), Bytes::new()),
                    Poll::Ready(Err(e)) => {
                        if e.should_retry() && this.resume(&e) {
                            continue;
                        }
                        this.state = State::Done;
                        return Poll::Ready(Err(io::Error::other(e)));
                    }
                },
                State::Reading(stream, leftover) => {
                    if !leftover.is_empty() {
                        let n = leftover.len().min(buf.remaining());
                        buf.put_slice(&leftover.split_to(n));
                        this.offset += n as u64;
                        count(&this.client.stats.blob_bytes_in, n as u64);
                        return Poll::Ready(Ok(()));
                    }
                    match stream.poll_next_unpin(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Some(Ok(b))) => *leftover = b,
                        Poll::Ready(Some(Err(e))) => {
                            if this.resume(&e) {
                                continue;
                            }
                            this.state = State::Done;
                            return Poll::Ready(Err(io::Error::other(Error::Transport {
                                what: format!("reading blob {}", this.desc.digest),
                                source: e,
                            })));
                        }
                        Poll::Ready(None) => {
                            // Ended early: the connection dropped between chunks.
                            if this.offset < this.desc.size && this.resume(&"the body ended early") {
                                continue;
                            }
                            this.state = State::Done;
                            return Poll::Ready(Ok(()));
                        }
                    }
                }
            }
        }
    }
}
