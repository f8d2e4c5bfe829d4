// A gRPC origin for bench/transcode-cost: h2c on 127.0.0.1, one thread, poll(); every request
// is answered, once its stream ends, with one canned message and grpc-status 0 in trailers.
// Fast enough that the gateway, not the origin, sets the pace (grpcio's Python server
// manages a few thousand calls a second, which would turn the benchmark into one of wakeups).
//
// Usage: grpc-origin PORT MESSAGE-FILE (the message's bytes, without the 5-byte prefix).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONNS 256

static unsigned char frame[65536];
static size_t frame_len;

struct conn {
  int fd;
  nghttp2_session *session;
};
static struct conn conns[MAX_CONNS];

struct body {
  size_t sent;
};

static ssize_t send_cb(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *u) {
  (void)s;
  (void)flags;
  struct conn *c = u;
  ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
  if (n < 0) return NGHTTP2_ERR_WOULDBLOCK;
  return n;
}

static ssize_t read_body(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *source, void *u) {
  (void)u;
  struct body *b = source->ptr;
  size_t n = frame_len - b->sent;
  if (n > len) n = len;
  memcpy(buf, frame + b->sent, n);
  b->sent += n;
  if (b->sent == frame_len) {
    *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
    const nghttp2_nv trailer[] = {{(uint8_t *)"grpc-status", (uint8_t *)"0", 11, 1, 0}};
    nghttp2_submit_trailer(s, stream_id, trailer, 1);
    free(b);
  }
  return (ssize_t)n;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *u) {
  (void)u;
  if (!(f->hd.flags & NGHTTP2_FLAG_END_STREAM)) return 0;
  if (f->hd.type != NGHTTP2_DATA && f->hd.type != NGHTTP2_HEADERS) return 0;
  const nghttp2_nv head[] = {{(uint8_t *)":status", (uint8_t *)"200", 7, 3, 0},
                             {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16, 0}};
  struct body *b = calloc(1, sizeof *b);
  nghttp2_data_provider provider = {.source = {.ptr = b}, .read_callback = read_body};
  nghttp2_submit_response(s, f->hd.stream_id, head, 2, &provider);
  return 0;
}

static void drop(struct conn *c) {
  nghttp2_session_del(c->session);
  close(c->fd);
  c->fd = -1;
}

int main(int argc, char **argv) {
  if (argc != 3) return 2;
  FILE *f = fopen(argv[2], "rb");
  if (!f) return 2;
  size_t message_len = fread(frame + 5, 1, sizeof frame - 5, f);
  fclose(f);
  frame[0] = 0;
  frame[1] = (unsigned char)(message_len >> 24);
  frame[2] = (unsigned char)(message_len >> 16);
  frame[3] = (unsigned char)(message_len >> 8);
  frame[4] = (unsigned char)message_len;
  frame_len = message_len + 5;

  int listener = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(listener, 128) != 0) {
    perror("grpc-origin");
    return 1;
  }
  nghttp2_session_callbacks *callbacks;
  nghttp2_session_callbacks_new(&callbacks);
  nghttp2_session_callbacks_set_send_callback(callbacks, send_cb);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
  for (int i = 0; i < MAX_CONNS; ++i) conns[i].fd = -1;
  for (;;) {
    struct pollfd fds[MAX_CONNS + 1];
    int map[MAX_CONNS + 1];
    int n = 0;
    fds[n] = (struct pollfd){.fd = listener, .events = POLLIN};
    map[n++] = -1;
    for (int i = 0; i < MAX_CONNS; ++i) {
      if (conns[i].fd < 0) continue;
      short events = POLLIN;
      if (nghttp2_session_want_write(conns[i].session)) events |= POLLOUT;
      fds[n] = (struct pollfd){.fd = conns[i].fd, .events = events};
      map[n++] = i;
    }
    if (poll(fds, (nfds_t)n, -1) < 0) continue;
    if (fds[0].revents & POLLIN) {
      int fd = accept(listener, NULL, NULL);
      int slot = -1;
      for (int i = 0; i < MAX_CONNS && fd >= 0; ++i) {
        if (conns[i].fd < 0) {
          slot = i;
          break;
        }
      }
      if (slot < 0) {
        if (fd >= 0) close(fd);
      } else {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(fd, F_SETFL, O_NONBLOCK);
        conns[slot].fd = fd;
        nghttp2_session_server_new(&conns[slot].session, callbacks, &conns[slot]);
        nghttp2_submit_settings(conns[slot].session, NGHTTP2_FLAG_NONE, NULL, 0);
      }
    }
    for (int k = 1; k < n; ++k) {
      struct conn *c = &conns[map[k]];
      if (fds[k].revents & (POLLIN | POLLHUP | POLLERR)) {
        uint8_t buf[65536];
        ssize_t got = recv(c->fd, buf, sizeof buf, 0);
        if (got <= 0 || nghttp2_session_mem_recv(c->session, buf, (size_t)got) < 0) {
          drop(c);
          continue;
        }
      }
      if (nghttp2_session_send(c->session) != 0) drop(c);
    }
  }
}
