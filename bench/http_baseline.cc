// The peer of `airlock serve` in bench/serve_bench.sh: the least an HTTP service built from
// the same library (Boost.Beast) does to answer the same request. It parses the JSON body,
// runs its `sql` on a SQLite file and replies with the rows as JSON, over keep-alive
// connections. No authentication, no policy, no audit: the ratio of airlock's throughput to
// this one is what airlock's pipeline costs.
//
//   http_baseline DB PORT [THREADS]      prints "listening PORT" when ready
#include <sqlite3.h>

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Json = nlohmann::json;

namespace {

const char* g_db_path = nullptr;

// One connection per thread: SQLite connections are not shared between threads here.
sqlite3* ThreadDb() {
  thread_local sqlite3* db = [] {
    sqlite3* d = nullptr;
    if (sqlite3_open_v2(g_db_path, &d, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr) !=
        SQLITE_OK) {
      std::fprintf(stderr, "cannot open %s\n", g_db_path);
      std::exit(1);
    }
    return d;
  }();
  return db;
}

std::string RunQuery(const std::string& sql, int* status) {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(ThreadDb(), sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
    *status = 400;
    return Json{{"error", sqlite3_errmsg(ThreadDb())}}.dump();
  }
  Json rows = Json::array();
  Json columns = Json::array();
  int n = sqlite3_column_count(st);
  for (int i = 0; i < n; ++i) columns.push_back(sqlite3_column_name(st, i));
  while (sqlite3_step(st) == SQLITE_ROW) {
    Json row = Json::array();
    for (int i = 0; i < n; ++i) {
      switch (sqlite3_column_type(st, i)) {
        case SQLITE_INTEGER:
          row.push_back(sqlite3_column_int64(st, i));
          break;
        case SQLITE_FLOAT:
          row.push_back(sqlite3_column_double(st, i));
          break;
        case SQLITE_NULL:
          row.push_back(nullptr);
          break;
        default:
          row.push_back(reinterpret_cast<const char*>(sqlite3_column_text(st, i)));
      }
    }
    rows.push_back(std::move(row));
  }
  sqlite3_finalize(st);
  *status = 200;
  return Json{{"status", "applied"}, {"result", {{"columns", columns}, {"rows", rows}}}}.dump();
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  explicit Session(tcp::socket s) : stream_(std::move(s)) {}
  void Start() { Read(); }

 private:
  void Read() {
    req_ = {};
    http::async_read(stream_, buf_, req_,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       if (ec) return;
                       self->Handle();
                     });
  }
  void Handle() {
    int status = 400;
    std::string body;
    Json j = Json::parse(req_.body(), nullptr, false);
    if (j.is_object() && j.contains("sql") && j["sql"].is_string()) {
      body = RunQuery(j["sql"].get<std::string>(), &status);
    } else {
      body = R"({"error":"bad request"})";
    }
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(status), req_.version());
    res->set(http::field::content_type, "application/json");
    res->keep_alive(req_.keep_alive());
    res->body() = std::move(body);
    res->prepare_payload();
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res](beast::error_code ec, size_t) {
                        if (ec || !res->keep_alive()) return;
                        self->Read();
                      });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buf_;
  http::request<http::string_body> req_;
};

void Accept(tcp::acceptor& acceptor) {
  acceptor.async_accept([&acceptor](beast::error_code ec, tcp::socket s) {
    if (!ec) {
      s.set_option(tcp::no_delay(true));
      std::make_shared<Session>(std::move(s))->Start();
    }
    Accept(acceptor);
  });
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: http_baseline DB PORT [THREADS]\n");
    return 2;
  }
  g_db_path = argv[1];
  const int threads = argc > 3 ? std::atoi(argv[3]) : 2;
  asio::io_context io(threads);
  tcp::acceptor acceptor(
      io, {asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(std::atoi(argv[2]))});
  std::printf("listening %u\n", acceptor.local_endpoint().port());
  std::fflush(stdout);
  Accept(acceptor);
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i) pool.emplace_back([&io] { io.run(); });
  io.run();
  for (auto& t : pool) t.join();
}
