#pragma once
// A route's `headers: {request: {set, remove}, response: {set, remove}}`. The upstream request
// is written without the removed fields and with the set ones (a set replaces what the client
// sent); likewise the upstream's response on its way to the client. The gateway's own answers
// are left as they are.

#include "config/model.hpp"
#include "filters/filter.hpp"
#include "http/field_edits.hpp"

namespace portico::filters {

class HeadersFactory final : public FilterFactory {
 public:
  HeadersFactory(const HeaderEdits& request, const HeaderEdits& response);
  Filter& create(Arena& arena) const override;
  const http::FieldEdits& request() const { return request_; }
  const http::FieldEdits& response() const { return response_; }

 private:
  http::FieldEdits request_;
  http::FieldEdits response_;
};

class HeadersFilter final : public Filter {
 public:
  explicit HeadersFilter(const HeadersFactory& route) : route_(route) {}
  FilterStatus onRequestHeaders(FilterCallbacks& stream, const RequestInfo& request) override;
  FilterStatus onResponseHeaders(FilterCallbacks& stream, ResponseInfo& response) override;

 private:
  const HeadersFactory& route_;
};

// Whether a route has header edits (and so this filter).
bool hasHeaderEdits(const config::Route& route);

}  // namespace portico::filters
