// Load driver of the order-processing example: places N orders through PgBouncer from
// several connections, with a seeded mix of outcomes, and reads each order back with a
// session token (read-your-writes through a transaction pooler). It keeps no score of its
// own: every number of the report is read from the databases and from Kafka.
//
//   driver --conninfo STR [--orders N] [--clients C] [--rate R] [--seed S]
//
// Order i's scenario depends only on (seed, i), never on which connection placed it.
#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Options {
  std::string conninfo;
  long orders = 1000;
  int clients = 8;
  double rate = 0;  // orders per second in all, 0 = as fast as possible
  unsigned long seed = 1;
};

struct Order {
  std::string key, customer, sku, region;
  int qty = 1;
  double amount = 0;
  bool duplicate = false;
};

const char* const kSkus[] = {"book", "lamp", "mug", "pen", "tea"};
const double kPrices[] = {12.50, 30.00, 8.00, 2.50, 6.00};
const char* const kRegions[] = {"north", "south", "east", "west"};

// The mix: 8 % for the SKU with little stock (out of stock once it is gone), 8 % from a
// customer who cannot pay, 5 % to a region whose carrier never answers, 10 % submitted twice.
Order make_order(unsigned long seed, long i) {
  std::mt19937_64 rng(seed * 1000003ULL + static_cast<unsigned long>(i));
  std::uniform_real_distribution<double> u(0, 1);
  Order o;
  o.key = "k-" + std::to_string(seed) + "-" + std::to_string(i);
  const double r = u(rng);
  const int s = static_cast<int>(rng() % 5);
  o.qty = 1 + static_cast<int>(rng() % 3);
  o.sku = kSkus[s];
  double price = kPrices[s];
  o.customer = "c" + std::to_string(rng() % 50);
  o.region = kRegions[rng() % 4];
  if (r < 0.08) {
    o.sku = "limited";
    price = 20.00;
  } else if (r < 0.16) {
    o.customer = "broke" + std::to_string(rng() % 5);
  } else if (r < 0.21) {
    o.region = "atlantis";
  }
  o.amount = price * o.qty;
  o.duplicate = u(rng) < 0.10;
  return o;
}

class Client {
 public:
  explicit Client(const std::string& conninfo) : conninfo_(conninfo) {}
  ~Client() {
    if (conn_) PQfinish(conn_);
  }

  // Runs one statement (its own transaction through the pooler). A lost connection or a
  // server that is restarting is retried on a new connection for up to a minute; an SQL
  // error is returned as such. Returns false on an SQL error, with the message in *err.
  bool exec(const char* sql, const std::vector<std::string>& params, std::string* value, std::string* err) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (;;) {
      if (!conn_ || PQstatus(conn_) != CONNECTION_OK) {
        if (conn_) PQfinish(conn_);
        conn_ = PQconnectdb(conninfo_.c_str());
      }
      if (PQstatus(conn_) == CONNECTION_OK) {
        std::vector<const char*> p;
        for (const auto& s : params) p.push_back(s.c_str());
        PGresult* res =
            PQexecParams(conn_, sql, static_cast<int>(p.size()), nullptr, p.data(), nullptr, nullptr, 0);
        const ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
          if (value) *value = (PQntuples(res) > 0 && PQnfields(res) > 0) ? PQgetvalue(res, 0, 0) : "";
          PQclear(res);
          return true;
        }
        const char* state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        const std::string msg = PQresultErrorMessage(res);
        PQclear(res);
        // Connection-class errors, and a server shutting down or starting: retry.
        const bool transient = PQstatus(conn_) != CONNECTION_OK || !state ||
                               std::strncmp(state, "08", 2) == 0 || std::strncmp(state, "57P", 3) == 0;
        if (!transient) {
          if (err) *err = msg;
          return false;
        }
      }
      if (std::chrono::steady_clock::now() > deadline) {
        if (err) *err = "no connection for 60 s: " + std::string(PQerrorMessage(conn_));
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }

 private:
  std::string conninfo_;
  PGconn* conn_ = nullptr;
};

std::string money(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

int run(const Options& opt) {
  std::atomic<long> next{0};
  std::atomic<long> errors{0};
  std::atomic<long> done{0};
  const auto t0 = std::chrono::steady_clock::now();
  auto worker = [&]() {
    Client c(opt.conninfo);
    for (long i = next++; i < opt.orders; i = next++) {
      if (opt.rate > 0)
        std::this_thread::sleep_until(t0 + std::chrono::microseconds(static_cast<long>(i * 1e6 / opt.rate)));
      const Order o = make_order(opt.seed, i);
      const std::vector<std::string> args = {o.key,           o.customer, o.sku, std::to_string(o.qty),
                                             money(o.amount), o.region};
      std::string id, err;
      const char* place = "SELECT orders.place_order($1, $2, $3, $4::int, $5::numeric, $6)";
      if (!c.exec(place, args, &id, &err)) {
        std::fprintf(stderr, "driver: order %s: %s", o.key.c_str(), err.c_str());
        ++errors;
        continue;
      }
      // Read-your-writes through the pooler: a token taken after the commit, on whatever
      // backend, then a wait for the read model to have handled it.
      std::string token, reached, seen;
      if (c.exec("SELECT consistency.session_token()", {}, &token, &err) &&
          c.exec("SELECT consistency.wait_for_token($1, '10 s', 'order-view')", {token}, &reached, &err) &&
          c.exec("SELECT count(*) > 0 FROM orders.order_view WHERE order_id = $1", {id}, &seen, &err)) {
        c.exec("SELECT orders.record_read($1, $2::boolean, $3::boolean)", {id, reached, seen}, nullptr, &err);
      } else {
        std::fprintf(stderr, "driver: read back of %s: %s", id.c_str(), err.c_str());
        ++errors;
      }
      if (o.duplicate) {
        std::string again;
        if (!c.exec(place, args, &again, &err)) {
          std::fprintf(stderr, "driver: duplicate of %s: %s", o.key.c_str(), err.c_str());
          ++errors;
        }
      }
      const long n = ++done;
      if (n % (opt.orders >= 10 ? opt.orders / 10 : 1) == 0)
        std::fprintf(stderr, "driver: %ld/%ld orders placed\n", n, opt.orders);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < opt.clients; ++t) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  if (errors > 0) std::fprintf(stderr, "driver: %ld calls failed\n", errors.load());
  return errors > 0 ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const char* v = argv[i + 1];
    if (a == "--conninfo")
      opt.conninfo = v;
    else if (a == "--orders")
      opt.orders = std::atol(v);
    else if (a == "--clients")
      opt.clients = std::atoi(v);
    else if (a == "--rate")
      opt.rate = std::atof(v);
    else if (a == "--seed")
      opt.seed = std::strtoul(v, nullptr, 10);
    else {
      std::fprintf(stderr, "driver: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (opt.conninfo.empty() || opt.orders < 0 || opt.clients < 1) {
    std::fprintf(stderr, "usage: driver --conninfo STR [--orders N] [--clients C] [--rate R] [--seed S]\n");
    return 2;
  }
  return run(opt);
}
