// The inbox consumer's topic lookup on a thread of its own (Consumer::start_metadata),
// against librdkafka's mock cluster with a slow broker: the call returns before the
// broker answers, one lookup runs at a time, the answer wakes the descriptor given to
// wake_through and is handed over once. (The mock creates any topic asked about; a missing
// topic is tested against the real broker, test/t/500 and 504.)
#include <fcntl.h>
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <memory>

#include "inbox/kafka_consumer.hpp"

using pgc::inbox::Consumer;
using pgc::inbox::TopicInfo;

namespace {

class MockCluster {
 public:
  MockCluster() {
    char err[256];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
    host_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    mc_ = rd_kafka_mock_cluster_new(host_, 1);
  }
  ~MockCluster() {
    rd_kafka_mock_cluster_destroy(mc_);
    rd_kafka_destroy(host_);
  }
  std::string bootstraps() const { return rd_kafka_mock_cluster_bootstraps(mc_); }
  rd_kafka_mock_cluster_t* get() { return mc_; }

 private:
  rd_kafka_t* host_ = nullptr;
  rd_kafka_mock_cluster_t* mc_ = nullptr;
};

void drain(int fd) {
  char buf[64];
  while (read(fd, buf, sizeof buf) > 0) {
  }
}

}  // namespace

TEST(InboxMetadataLookup, RunsOnItsThreadAndWakesTheProcess) {
  MockCluster mc;
  ASSERT_EQ(rd_kafka_mock_topic_create(mc.get(), "orders", 3, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_EQ(rd_kafka_mock_topic_create(mc.get(), "payments", 2, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  pgc::relay::KafkaConfig cfg;
  cfg.brokers = mc.bootstraps();
  std::string error;
  std::unique_ptr<Consumer> c = Consumer::create(cfg, "unit-metadata", &error);
  ASSERT_TRUE(c) << error;
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
  c->wake_through(fds[1]);
  std::vector<TopicInfo> infos;
  // Once connected, the broker takes 500 ms per request.
  ASSERT_TRUE(c->metadata({"orders"}, 5000, &infos, &error)) << error;
  ASSERT_EQ(rd_kafka_mock_broker_set_rtt(mc.get(), 1, 500), RD_KAFKA_RESP_ERR_NO_ERROR);
  drain(fds[0]);

  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(c->start_metadata({"orders", "payments"}, 5000));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(250))
      << "the caller does not wait for the broker";
  EXPECT_FALSE(c->start_metadata({"orders"}, 5000)) << "one lookup at a time";
  EXPECT_EQ(c->take_metadata(&infos, &error), Consumer::Lookup::kRunning);
  EXPECT_FALSE(c->metadata_answered());

  // Woken by the answer (anything else librdkafka signals is drained and waited past).
  auto deadline = t0 + std::chrono::seconds(10);
  while (!c->metadata_answered() && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fds[0], POLLIN, 0};
    int left = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now())
            .count());
    if (poll(&p, 1, left > 0 ? left : 0) != 1) break;
    drain(fds[0]);
  }
  ASSERT_TRUE(c->metadata_answered()) << "no wake-up with the answer";
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(400)) << "the broker was slow";

  ASSERT_EQ(c->take_metadata(&infos, &error), Consumer::Lookup::kAnswered) << error;
  ASSERT_EQ(infos.size(), 2u);
  EXPECT_EQ(infos[0].topic, "orders");
  EXPECT_EQ(infos[0].partitions, 3);
  EXPECT_EQ(infos[1].topic, "payments");
  EXPECT_EQ(infos[1].partitions, 2);
  EXPECT_EQ(c->take_metadata(&infos, &error), Consumer::Lookup::kNone) << "handed over once";

  // A lookup still running when the consumer goes is waited for (it uses the handle).
  ASSERT_TRUE(c->start_metadata({"orders"}, 5000));
  c.reset();
  close(fds[0]);
  close(fds[1]);
}
