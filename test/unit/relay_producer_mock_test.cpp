// The relay's producer flow against librdkafka's built-in mock cluster: keyed
// partitioning as Java does it, per-partition order through retried produce errors,
// permanent refusals, an outage and its end, and the transactional calls. (The mock
// writes no transaction markers, so exactly-once itself is proven against the real
// broker in test/t/.)
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <chrono>
#include <map>
#include <thread>

#include "relay/batch.hpp"
#include "relay/kafka.hpp"
#include "relay/murmur2.hpp"

using namespace pgc::relay;

namespace {

constexpr int16_t kApiKeyProduce = 0;  // the Kafka protocol ApiKey of Produce

class MockCluster {
 public:
  explicit MockCluster(int brokers) {
    char err[256];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
    host_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    mc_ = rd_kafka_mock_cluster_new(host_, brokers);
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

struct Report {
  uint64_t tag;
  int32_t partition;
  int err;
  std::string text;
};

void collect(void* ctx, uint64_t tag, int32_t partition, int err, const char* text) {
  static_cast<std::vector<Report>*>(ctx)->push_back(Report{tag, partition, err, text ? text : ""});
}

std::unique_ptr<Producer> make_producer(const std::string& brokers, std::vector<Report>* reports,
                                        Properties extra = {}, bool transactional = false) {
  KafkaConfig cfg;
  cfg.brokers = brokers;
  cfg.properties = std::move(extra);
  cfg.properties.emplace_back("log_level", "0");
  cfg.transactional = transactional;
  cfg.transactional_id = "unit-test-relay";
  std::string error;
  auto p = Producer::create(cfg, &error);
  EXPECT_TRUE(p) << error;
  if (p) p->set_delivery_handler(collect, reports);
  return p;
}

int produce(Producer& p, const std::string& topic, const std::string& key, const std::string& value,
            uint64_t tag, std::string* err = nullptr) {
  std::string e;
  std::vector<Header> headers = {{"outbox_id", std::to_string(tag), false}, {"nothing", "", true}};
  int rc = p.produce(topic, -1, key.data(), key.size(), false, value.data(), value.size(), false, headers,
                     tag, &e);
  if (err) *err = e;
  return rc;
}

// A one-broker mock cluster and a producer on it whose delivery reports are collected.
class RelayProducerMock : public ::testing::Test {
 protected:
  // Creates topic `name` with `partitions` partitions on the mock cluster.
  ::testing::AssertionResult topic(const char* name, int partitions) {
    rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(mc_.get(), name, partitions, 1);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "topic " << name << ": " << rd_kafka_err2str(err);
  }

  // Starts the producer; `probe`: and waits until it has reached the broker.
  ::testing::AssertionResult start(Properties extra = {}, bool transactional = false, bool probe = false) {
    p_ = make_producer(mc_.bootstraps(), &reports_, std::move(extra), transactional);
    if (!p_) return ::testing::AssertionFailure() << "no producer";
    std::string perr;
    if (probe && !p_->probe(5000, &perr)) return ::testing::AssertionFailure() << "probe: " << perr;
    return ::testing::AssertionSuccess();
  }

  MockCluster mc_{1};
  std::vector<Report> reports_;
  std::unique_ptr<Producer> p_;
};

}  // namespace

TEST_F(RelayProducerMock, KeysLandOnTheJavaPartition) {
  ASSERT_TRUE(topic("orders", 7));
  ASSERT_TRUE(start());
  std::vector<std::string> keys;
  for (int i = 0; i < 200; i++) keys.push_back("customer-" + std::to_string(i * 7919));
  for (size_t i = 0; i < keys.size(); i++) ASSERT_EQ(produce(*p_, "orders", keys[i], "{}", i), 0);
  ASSERT_TRUE(p_->flush(10000));
  ASSERT_EQ(reports_.size(), keys.size());
  std::map<int32_t, int> used;
  for (const auto& r : reports_) {
    ASSERT_EQ(r.err, 0) << r.text;
    EXPECT_EQ(r.partition, java_partition(keys[r.tag], 7)) << keys[r.tag];
    used[r.partition]++;
  }
  EXPECT_EQ(used.size(), 7u) << "200 keys spread over every partition";
}

TEST_F(RelayProducerMock, RetriedProduceErrorsKeepOrderAndLoseNothing) {
  ASSERT_TRUE(topic("t", 1));
  ASSERT_TRUE(start({{"linger.ms", "0"}}, false, true));
  rd_kafka_mock_push_request_errors(mc_.get(), kApiKeyProduce, 3, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                    RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                    RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS);
  for (uint64_t i = 0; i < 300; i++) ASSERT_EQ(produce(*p_, "t", "same-key", "v" + std::to_string(i), i), 0);
  ASSERT_TRUE(p_->flush(20000));
  ASSERT_EQ(reports_.size(), 300u);
  Batch b;
  for (uint64_t i = 0; i < 300; i++) b.sent(b.add(static_cast<int64_t>(i), "same-key", false));
  for (size_t i = 0; i < reports_.size(); i++) {
    EXPECT_EQ(reports_[i].err, 0) << reports_[i].text;
    EXPECT_EQ(reports_[i].tag, i) << "reports of one partition come in produce order";
    b.reported(reports_[i].tag, reports_[i].err, reports_[i].text);
  }
  EXPECT_TRUE(b.complete());
  EXPECT_EQ(b.delivered_ids().size(), 300u);
}

TEST_F(RelayProducerMock, OversizeMessageRefusedAtOnceAsPermanent) {
  ASSERT_TRUE(topic("t", 1));
  ASSERT_TRUE(start({{"message.max.bytes", "10000"}}));
  std::string err;
  int rc = produce(*p_, "t", "k", std::string(20000, 'x'), 1, &err);
  EXPECT_EQ(rc, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
  EXPECT_FALSE(err.empty());
  EXPECT_EQ(classify_error(rc), ErrorClass::kPermanent);
  EXPECT_EQ(produce(*p_, "t", "k2", "small", 2), 0) << "the producer goes on";
  ASSERT_TRUE(p_->flush(10000));
  ASSERT_EQ(reports_.size(), 1u);
  EXPECT_EQ(reports_[0].tag, 2u);
}

TEST_F(RelayProducerMock, BrokerRefusalReportedAsPermanent) {
  ASSERT_TRUE(topic("t", 1));
  ASSERT_TRUE(start({{"linger.ms", "0"}}, false, true));
  rd_kafka_mock_push_request_errors(mc_.get(), kApiKeyProduce, 1, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
  ASSERT_EQ(produce(*p_, "t", "k", "refused by the broker", 1), 0);
  ASSERT_TRUE(p_->flush(10000));
  ASSERT_EQ(produce(*p_, "t", "k", "accepted", 2), 0);
  ASSERT_TRUE(p_->flush(10000));
  ASSERT_EQ(reports_.size(), 2u);
  EXPECT_EQ(reports_[0].err, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
  EXPECT_EQ(classify_error(reports_[0].err), ErrorClass::kPermanent);
  EXPECT_EQ(reports_[1].err, 0);
}

TEST_F(RelayProducerMock, OutageIsReportedAndDeliveryResumes) {
  ASSERT_TRUE(topic("t", 2));
  ASSERT_TRUE(start({{"linger.ms", "0"}}, false, true));
  ASSERT_EQ(rd_kafka_mock_broker_set_down(mc_.get(), 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  for (uint64_t i = 0; i < 20; i++) ASSERT_EQ(produce(*p_, "t", "k" + std::to_string(i % 3), "v", i), 0);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!p_->all_brokers_down() && std::chrono::steady_clock::now() < deadline) p_->poll(100);
  EXPECT_TRUE(p_->all_brokers_down()) << "the outage is reported through the error callback";
  std::string perr;
  EXPECT_FALSE(p_->probe(300, &perr));
  EXPECT_TRUE(reports_.empty()) << "nothing is reported lost while the broker is down";
  ASSERT_EQ(rd_kafka_mock_broker_set_up(mc_.get(), 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_TRUE(p_->flush(20000)) << "delivery resumes on its own";
  ASSERT_EQ(reports_.size(), 20u);
  for (const auto& r : reports_) EXPECT_EQ(r.err, 0) << r.text;
}

TEST_F(RelayProducerMock, TransactionalCallsSucceed) {
  ASSERT_TRUE(topic("t", 1));
  ASSERT_TRUE(topic("progress", 1));
  ASSERT_TRUE(start({}, true));
  TxnResult r = p_->init_transactions(10000);
  ASSERT_TRUE(r.ok) << r.message;
  for (int batch = 1; batch <= 3; batch++) {
    ASSERT_TRUE(p_->begin_transaction().ok);
    for (uint64_t i = 0; i < 10; i++) ASSERT_EQ(produce(*p_, "t", "k", "v", batch * 100 + i), 0);
    std::string value = encode_progress(batch, 10), err;
    ASSERT_EQ(p_->produce("progress", 0, "relay", 5, false, value.data(), value.size(), false, {}, 999, &err),
              0)
        << err;
    r = p_->commit_transaction(10000);
    ASSERT_TRUE(r.ok) << r.message;
  }
  p_->poll(0);
  EXPECT_EQ(reports_.size(), 33u);
  // An aborted transaction: its reports still come, and the producer goes on.
  ASSERT_TRUE(p_->begin_transaction().ok);
  ASSERT_EQ(produce(*p_, "t", "k", "v", 5000), 0);
  r = p_->abort_transaction(10000);
  EXPECT_TRUE(r.ok) << r.message;
  ASSERT_TRUE(p_->begin_transaction().ok);
  r = p_->commit_transaction(10000);
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(RelayProducerConfig, InvalidSettingNamedWithoutItsValue) {
  KafkaConfig cfg;
  cfg.brokers = "127.0.0.1:1";
  cfg.properties = {{"linger.ms", "not-a-number-s3cr3t"}};
  std::string error;
  auto p = Producer::create(cfg, &error);
  EXPECT_FALSE(p);
  EXPECT_NE(error.find("linger.ms"), std::string::npos) << error;
  EXPECT_EQ(error.find("s3cr3t"), std::string::npos) << error;
}
