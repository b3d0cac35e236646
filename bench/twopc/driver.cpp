// Benchmark driver: distributed transfers touching three participant databases.
//   2pc:   one transaction on the coordinator that updates an account on each participant
//          with consistency.remote_exec (two-phase commit), sent as one round trip;
//   plain: the same three updates, each committed on its own database without 2PC
//          (one plain transaction per database, one after the other).
// Prints one line: mode clients seconds ops tps p50_ms p99_ms errors
//
//   driver MODE CLIENTS SECONDS ACCOUNTS COORD_CONNINFO P1 P2 P3
#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

using Clock = std::chrono::steady_clock;

struct Result {
  std::vector<double> latencies_ms;
  long errors = 0;
};

static PGconn* connect_or_die(const std::string& ci) {
  PGconn* c = PQconnectdb(ci.c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    fprintf(stderr, "connect failed: %s", PQerrorMessage(c));
    exit(2);
  }
  return c;
}

static bool exec_ok(PGconn* c, const std::string& sql) {
  PGresult* r = PQexec(c, sql.c_str());
  bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
  if (!ok) fprintf(stderr, "error: %s", PQresultErrorMessage(r));
  PQclear(r);
  return ok;
}

int main(int argc, char** argv) {
  if (argc != 9) {
    fprintf(stderr, "usage: driver 2pc|plain CLIENTS SECONDS ACCOUNTS COORD P1 P2 P3\n");
    return 2;
  }
  std::string mode = argv[1];
  int clients = atoi(argv[2]);
  int seconds = atoi(argv[3]);
  int accounts = atoi(argv[4]);
  std::string coord = argv[5];
  std::vector<std::string> parts = {argv[6], argv[7], argv[8]};
  const char* names[] = {"p1", "p2", "p3"};
  const int deltas[] = {-2, 1, 1};

  std::atomic<bool> stop{false};
  std::vector<Result> results(clients);
  std::vector<std::thread> threads;
  for (int t = 0; t < clients; t++) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(1234 + t);
      std::uniform_int_distribution<int> acct(1, accounts);
      PGconn* c = nullptr;
      std::vector<PGconn*> pc;
      if (mode == "2pc") {
        c = connect_or_die(coord);
      } else {
        for (auto& ci : parts) pc.push_back(connect_or_die(ci));
      }
      Result& res = results[t];
      while (!stop.load(std::memory_order_relaxed)) {
        int ids[3] = {acct(rng), acct(rng), acct(rng)};
        auto t0 = Clock::now();
        bool ok = true;
        if (mode == "2pc") {
          std::string sql = "BEGIN;";
          for (int i = 0; i < 3; i++)
            sql += "SELECT consistency.remote_exec('" + std::string(names[i]) +
                   "', 'UPDATE accounts SET balance = balance + (" + std::to_string(deltas[i]) +
                   ") WHERE id = " + std::to_string(ids[i]) + "');";
          sql += "COMMIT;";
          ok = exec_ok(c, sql);
        } else {
          for (int i = 0; i < 3; i++)
            ok = exec_ok(pc[i], "UPDATE accounts SET balance = balance + (" + std::to_string(deltas[i]) +
                                    ") WHERE id = " + std::to_string(ids[i])) &&
                 ok;
        }
        double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        if (ok)
          res.latencies_ms.push_back(ms);
        else
          res.errors++;
      }
      if (c) PQfinish(c);
      for (auto* x : pc) PQfinish(x);
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  stop = true;
  for (auto& th : threads) th.join();

  std::vector<double> all;
  long errors = 0;
  for (auto& r : results) {
    all.insert(all.end(), r.latencies_ms.begin(), r.latencies_ms.end());
    errors += r.errors;
  }
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) {
    if (all.empty()) return 0.0;
    size_t i = static_cast<size_t>(p * (all.size() - 1));
    return all[i];
  };
  printf("%s %d %d %zu %.1f %.2f %.2f %ld\n", mode.c_str(), clients, seconds, all.size(),
         all.size() / static_cast<double>(seconds), pct(0.50), pct(0.99), errors);
  // The percentiles cover committed transfers only: a failed one would be left out of them,
  // so any failure (or no transfer at all) fails the run.
  if (errors > 0 || all.empty()) {
    fprintf(stderr, "%s: %ld transfers failed, %zu committed\n", mode.c_str(), errors, all.size());
    return 1;
  }
  return 0;
}
