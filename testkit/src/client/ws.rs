//! WebSocket clients over an upgraded HTTP/1.1 connection.

use super::*;

/// An open WebSocket (async). Created by [`HttpClient::websocket_async`].
pub struct AsyncWebSocket {
    pub(super) stream: BufReader<Box<dyn AsyncStream>>,
    pub(super) addr: SocketAddr,
    pub(super) timeout: Duration,
    pub(super) handshake: Response,
}

impl fmt::Debug for AsyncWebSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncWebSocket")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl AsyncWebSocket {
    /// The 101 response of the handshake.
    pub fn handshake_response(&self) -> &Response {
        &self.handshake
    }

    /// Sends one message (masked, as a client must).
    pub async fn send(&mut self, message: &Message) -> Result<(), ClientError> {
        let addr = self.addr;
        websocket::write_message(self.stream.get_mut(), message, true)
            .await
            .map_err(|source| ClientError::WebSocket { addr, source })
    }

    /// Receives the next message, within the client's timeout.
    pub async fn recv(&mut self) -> Result<Message, ClientError> {
        let addr = self.addr;
        tokio::time::timeout(self.timeout, websocket::read_message(&mut self.stream))
            .await
            .map_err(|_| ClientError::Timeout {
                addr,
                timeout: self.timeout,
            })?
            .map_err(|source| ClientError::WebSocket { addr, source })
    }

    /// Sends a close frame (status 1000) and waits for the peer's close.
    pub async fn close(&mut self) -> Result<(), ClientError> {
        self.send(&Message::Close(Some(1000), String::new()))
            .await?;
        loop {
            if let Message::Close(..) = self.recv().await? {
                return Ok(());
            }
        }
    }
}

/// A blocking WebSocket. Created by [`HttpClient::websocket`].
pub struct WebSocketClient {
    pub(super) runtime: tokio::runtime::Runtime,
    pub(super) socket: AsyncWebSocket,
}

impl fmt::Debug for WebSocketClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketClient")
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

impl WebSocketClient {
    /// The 101 response of the handshake.
    pub fn handshake_response(&self) -> &Response {
        self.socket.handshake_response()
    }

    /// Sends one message.
    pub fn send(&mut self, message: &Message) -> Result<(), ClientError> {
        self.runtime.block_on(self.socket.send(message))
    }

    /// Sends a text message.
    pub fn send_text(&mut self, text: &str) -> Result<(), ClientError> {
        self.send(&Message::Text(text.to_owned()))
    }

    /// Receives the next message (within the client's timeout).
    pub fn recv(&mut self) -> Result<Message, ClientError> {
        self.runtime.block_on(self.socket.recv())
    }

    /// Sends `text` and returns the next text message (an echo server's answer).
    pub fn echo_text(&mut self, text: &str) -> Result<String, ClientError> {
        self.send_text(text)?;
        match self.recv()? {
            Message::Text(reply) => Ok(reply),
            other => Err(ClientError::Protocol {
                addr: self.socket.addr,
                message: format!("expected a text message, got {other:?}"),
            }),
        }
    }

    /// Closes the WebSocket cleanly.
    pub fn close(mut self) -> Result<(), ClientError> {
        self.runtime.block_on(self.socket.close())
    }
}
