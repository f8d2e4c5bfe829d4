#pragma once
// The admin API listener (SPEC §5), served on the control thread's loop, away from the workers.
// Small requests only; each connection carries one request and is closed after the answer.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "net/event_loop.hpp"
#include "net/socket.hpp"

namespace portico::admin {

struct AdminRequest {
  std::string method;
  std::string path;
  std::string query;
  std::string authorization;
  std::string host;    // the Host field, as sent
  std::string origin;  // the Origin field, when a browser sent one
  std::string body;
};

struct AdminResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

using AdminHandler = std::function<AdminResponse(const AdminRequest&)>;

class AdminServer final : public net::EventHandler {
 public:
  AdminServer(net::EventLoop& loop, net::UniqueFd listen_fd, AdminHandler handler);
  ~AdminServer() override;
  void onEvents(uint32_t events) override;

 private:
  class Connection;
  void finished(Connection* conn);

  net::EventLoop& loop_;
  net::UniqueFd fd_;
  AdminHandler handler_;
  std::vector<std::unique_ptr<Connection>> connections_;
  std::vector<Connection*> free_;
};

}  // namespace portico::admin
