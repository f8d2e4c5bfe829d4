#include "observability/metrics_view.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string_view>

namespace portico::observability {
namespace {

void appendEscaped(std::string& out, std::string_view value) {
  for (char c : value) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

void appendNumber(std::string& out, double value) {
  char text[32];
  int n = std::snprintf(text, sizeof text, "%.17g", value);
  out.append(text, static_cast<size_t>(n));
}

// One "name{a="x",b="y"} value" line; labels as name/value pairs.
class Lines {
 public:
  explicit Lines(std::string& out) : out_(out) {}
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  void sample(std::string_view name, std::initializer_list<std::pair<std::string_view, std::string_view>> labels,
              double value) {
    out_ += name;
    if (labels.size() > 0) {
      out_ += '{';
      bool first = true;
      for (const auto& [label, text] : labels) {
        if (!first) out_ += ',';
        first = false;
        out_ += label;
        out_ += "=\"";
        appendEscaped(out_, text);
        out_ += '"';
      }
      out_ += '}';
    }
    out_ += ' ';
    appendNumber(out_, value);
    out_ += '\n';
  }
  void histogram(std::string_view name, std::string_view label, std::string_view text,
                 const HistogramTotals& h) {
    std::string bucket(name);
    bucket += "_bucket";
    uint64_t cumulative = 0;
    char le[32];
    for (size_t i = 0; i < Histogram::kBuckets; ++i) {
      cumulative += h.buckets[i];
      if (i < kDurationBounds.size()) {
        std::snprintf(le, sizeof le, "%g", kDurationBounds[i]);
      } else {
        std::strcpy(le, "+Inf");
      }
      sample(bucket, {{label, text}, {"le", le}}, static_cast<double>(cumulative));
    }
    sample(std::string(name) + "_sum", {{label, text}}, static_cast<double>(h.sum_us) / 1e6);
    sample(std::string(name) + "_count", {{label, text}}, static_cast<double>(cumulative));
  }

 private:
  std::string& out_;
};

std::pair<std::string_view, std::string_view> splitLabel(const std::string& joined) {
  size_t zero = joined.find('\0');
  if (zero == std::string::npos) return {joined, {}};
  return {std::string_view(joined).substr(0, zero), std::string_view(joined).substr(zero + 1)};
}

struct ProcessStats {
  double cpu_seconds = 0;
  double rss_bytes = 0;
  double virtual_bytes = 0;
  double open_fds = 0;
  double max_fds = 0;
};

ProcessStats readProcessStats() {
  ProcessStats stats;
  if (std::FILE* f = std::fopen("/proc/self/stat", "r")) {
    char text[1024];
    size_t n = std::fread(text, 1, sizeof text - 1, f);
    std::fclose(f);
    text[n] = '\0';
    // Fields after the command name, which is in parentheses and may hold spaces.
    if (const char* p = std::strrchr(text, ')')) {
      unsigned long utime = 0, stime = 0, vsize = 0;
      long rss = 0;
      if (std::sscanf(p + 2,
                      "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d "
                      "%*d %*u %lu %ld",
                      &utime, &stime, &vsize, &rss) == 4) {
        double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
        stats.cpu_seconds = static_cast<double>(utime + stime) / ticks;
        stats.virtual_bytes = static_cast<double>(vsize);
        stats.rss_bytes = static_cast<double>(rss) * static_cast<double>(sysconf(_SC_PAGESIZE));
      }
    }
  }
  if (DIR* dir = opendir("/proc/self/fd")) {
    int count = 0;
    while (const dirent* e = readdir(dir)) {
      if (e->d_name[0] != '.') ++count;
    }
    closedir(dir);
    stats.open_fds = count - 1;  // not the directory's own descriptor
  }
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) stats.max_fds = static_cast<double>(limit.rlim_cur);
  return stats;
}

std::string statusText(uint32_t key) { return std::to_string(key & 0xffff); }

void renderTraffic(Lines& lines, const MetricsView& view, const ScrapeExtras& extras) {
  lines.family("portico_requests_total", "counter",
               "Requests answered, by route, method and the status the client got.");
  for (const auto& [name, route] : view.routes) {
    for (const auto& [key, count] : route.requests) {
      auto method = methodLabel(static_cast<HttpMethod>(key >> 16));
      lines.sample("portico_requests_total",
                   {{"route", name}, {"method", method}, {"status", statusText(key)}},
                   static_cast<double>(count));
    }
  }
  lines.family("portico_request_duration_seconds", "histogram",
               "Time from a request's first byte to the end of its answer.");
  for (const auto& [name, route] : view.routes) {
    lines.histogram("portico_request_duration_seconds", "route", name, route.duration);
  }
  lines.family("portico_upstream_requests_total", "counter",
               "Requests sent to upstream endpoints, by outcome.");
  for (const auto& [name, upstream] : view.upstreams) {
    for (const auto& [address, endpoint] : upstream.endpoints) {
      for (size_t i = 0; i < kUpstreamOutcomes; ++i) {
        if (endpoint.outcomes[i] == 0) continue;
        lines.sample("portico_upstream_requests_total",
                     {{"upstream", name},
                      {"endpoint", address},
                      {"outcome", outcomeLabel(static_cast<UpstreamOutcome>(i))}},
                     static_cast<double>(endpoint.outcomes[i]));
      }
    }
  }
  lines.family("portico_upstream_retries_total", "counter",
               "Retries of failed upstream requests: sent, or refused by the retry budget.");
  for (const auto& [name, upstream] : view.upstreams) {
    if (upstream.retries_sent != 0) {
      lines.sample("portico_upstream_retries_total", {{"upstream", name}, {"result", "sent"}},
                   static_cast<double>(upstream.retries_sent));
    }
    if (upstream.retries_refused != 0) {
      lines.sample("portico_upstream_retries_total",
                   {{"upstream", name}, {"result", "budget_exhausted"}},
                   static_cast<double>(upstream.retries_refused));
    }
  }
  lines.family("portico_upstream_duration_seconds", "histogram",
               "Time from the start of an upstream request to its end.");
  for (const auto& [name, upstream] : view.upstreams) {
    lines.histogram("portico_upstream_duration_seconds", "upstream", name, upstream.duration);
  }
  lines.family("portico_auth_failures_total", "counter",
               "Requests refused by authentication or authorization, by reason.");
  for (const auto& [name, route] : view.routes) {
    for (const auto& [joined, count] : route.auth_failures) {
      auto [provider, reason] = splitLabel(joined);
      lines.sample("portico_auth_failures_total",
                   {{"route", name}, {"provider", provider}, {"reason", reason}},
                   static_cast<double>(count));
    }
  }
  lines.family("portico_rate_limited_total", "counter",
               "Requests refused by a rate limit or quota, by the limit's key.");
  for (const auto& [name, route] : view.routes) {
    for (const auto& [key, count] : route.rate_limited) {
      lines.sample("portico_rate_limited_total", {{"route", name}, {"key", key}},
                   static_cast<double>(count));
    }
  }
  lines.family("portico_cache_total", "counter", "Response cache lookups, by result.");
  lines.family("portico_circuit_state", "gauge",
               "Circuit breaker state per upstream: 0 closed, 1 half-open, 2 open.");
  for (size_t i = 0; i < extras.upstreams.size(); ++i) {
    const int state = i < extras.circuit_states.size() ? extras.circuit_states[i] : 0;
    lines.sample("portico_circuit_state", {{"upstream", extras.upstreams[i]}}, state);
  }
  lines.family("portico_connections_active", "gauge",
               "Open client connections, idle keep-alive ones included.");
  for (size_t i = 0; i < extras.listeners.size() && i < view.connections.size(); ++i) {
    lines.sample("portico_connections_active", {{"listener", extras.listeners[i]}},
                 static_cast<double>(view.connections[i]));
  }
}

}  // namespace

uint64_t HistogramTotals::count() const {
  uint64_t total = 0;
  for (uint64_t b : buckets) total += b;
  return total;
}

void HistogramTotals::add(const Histogram& h) {
  for (size_t i = 0; i < buckets.size(); ++i) buckets[i] += h.bucket(i);
  sum_us += h.sumUs();
}

uint64_t MetricsView::Endpoint::requests() const {
  uint64_t total = 0;
  for (uint64_t n : outcomes) total += n;
  return total;
}

uint64_t MetricsView::Endpoint::failures() const {
  return outcomes[static_cast<size_t>(UpstreamOutcome::Status5xx)] +
         outcomes[static_cast<size_t>(UpstreamOutcome::ConnectFailure)] +
         outcomes[static_cast<size_t>(UpstreamOutcome::Reset)] +
         outcomes[static_cast<size_t>(UpstreamOutcome::Timeout)];
}

MetricsView collectMetrics(std::span<const WorkerMetrics* const> workers, size_t listeners) {
  MetricsView view;
  view.connections.assign(listeners, 0);
  for (const WorkerMetrics* w : workers) {
    w->forEachRoute([&](const RouteMetrics& r) {
      MetricsView::Route& route = view.routes[r.name];
      r.requests.forEach([&](const RouteMetrics::StatusCount& s) {
        route.requests[s.key] += s.count.value();
      });
      route.duration.add(r.duration);
      r.auth_failures.forEach(
          [&](const NamedCount& c) { route.auth_failures[c.label] += c.count.value(); });
      r.rate_limited.forEach(
          [&](const NamedCount& c) { route.rate_limited[c.label] += c.count.value(); });
    });
    w->forEachUpstream([&](const UpstreamMetrics& u) {
      MetricsView::Upstream& upstream = view.upstreams[u.name];
      u.endpoints.forEach([&](const EndpointMetrics& e) {
        MetricsView::Endpoint& endpoint = upstream.endpoints[e.address];
        for (size_t i = 0; i < kUpstreamOutcomes; ++i) endpoint.outcomes[i] += e.outcomes[i].value();
        endpoint.in_flight += e.in_flight.value();
      });
      upstream.duration.add(u.duration);
      upstream.retries_sent += u.retries_sent.value();
      upstream.retries_refused += u.retries_refused.value();
    });
    for (size_t i = 0; i < listeners; ++i) view.connections[i] += w->connectionsOf(i);
  }
  return view;
}

std::string renderPrometheus(const MetricsView& view, const ScrapeExtras& extras) {
  std::string out;
  out.reserve(4096);
  Lines lines(out);
  if (extras.counting) renderTraffic(lines, view, extras);
  lines.family("portico_config_reloads_total", "counter", "Config reloads, by result.");
  lines.sample("portico_config_reloads_total", {{"result", "success"}},
               static_cast<double>(extras.reloads_ok));
  lines.sample("portico_config_reloads_total", {{"result", "failure"}},
               static_cast<double>(extras.reloads_failed));
  if (extras.counting) {
    lines.family("portico_tracing_spans_total", "counter",
                 "Spans given to the OTLP exporter, by what became of them.");
    lines.sample("portico_tracing_spans_total", {{"result", "exported"}},
                 static_cast<double>(extras.spans_exported));
    lines.sample("portico_tracing_spans_total", {{"result", "dropped"}},
                 static_cast<double>(extras.spans_dropped));
    lines.sample("portico_tracing_spans_total", {{"result", "failed"}},
                 static_cast<double>(extras.spans_failed));
  }

  const ProcessStats process = readProcessStats();
  const struct {
    std::string_view name, type, help;
    double value;
  } process_metrics[] = {
      {"process_cpu_seconds_total", "counter", "User and system CPU time spent.",
       process.cpu_seconds},
      {"process_resident_memory_bytes", "gauge", "Resident memory size.", process.rss_bytes},
      {"process_virtual_memory_bytes", "gauge", "Virtual memory size.", process.virtual_bytes},
      {"process_open_fds", "gauge", "Open file descriptors.", process.open_fds},
      {"process_max_fds", "gauge", "The limit on open file descriptors.", process.max_fds},
      {"process_start_time_seconds", "gauge", "Start time, in seconds since the epoch.",
       extras.start_time_seconds},
  };
  for (const auto& m : process_metrics) {
    lines.family(m.name, m.type, m.help);
    lines.sample(m.name, {}, m.value);
  }
  return out;
}

}  // namespace portico::observability
