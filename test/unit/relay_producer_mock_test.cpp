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

}  // namespace

TEST(RelayProducerMock, KeysLandOnTheJavaPartition) {
  MockCluster mc(1);
  ASSERT_EQ(rd_kafka_mock_topic_create(mc.get(), "orders", 7, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  std::vector<Report> reports;
  auto p = make_producer(mc.bootstraps(), &reports);
  ASSERT_TRUE(p);
  std::vector<std::string> keys;
  for (int i = 0; i < 200; i++) keys.push_back("customer-" + std::to_string(i * 7919));
  for (size_t i = 0; i < keys.size(); i++) ASSERT_EQ(produce(*p, "orders", keys[i], "{}", i), 0);
  ASSERT_TRUE(p->flush(10000));
  ASSERT_EQ(reports.size(), keys.size());
  std::map<int32_t, int> used;
  for (const auto& r : reports) {
    ASSERT_EQ(r.err, 0) << r.text;
    EXPECT_EQ(r.partition, java_partition(keys[r.tag], 7)) << keys[r.tag];
    used[r.partition]++;
  }
  EXPECT_EQ(used.size(), 7u) << "200 keys spread over every partition";
}

TEST(RelayProducerMock, RetriedProduceErrorsKeepOrderAndLoseNothing) {
  MockCluster mc(1);
  ASSERT_EQ(rd_kafka_mock_topic_create(mc.get(), "t", 1, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  std::vector<Report> reports;
  auto p = make_producer(mc.bootstraps(), &reports, {{"linger.ms", "0"}});
  ASSERT_TRUE(p);
  std::string perr;
  ASSERT_TRUE(p->probe(5000, &perr)) << perr;
  rd_kafka_mock_push_request_errors(mc.get(), kApiKeyProduce, 3, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                    RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                    RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS);
  for (uint64_t i = 0; i < 300; i++) ASSERT_EQ(produce(*p, "t", "same-key", "v" + std::to_string(i), i), 0);
  ASSERT_TRUE(p->flush(20000));
  ASSERT_EQ(reports.size(), 300u);
  Batch b;
  for (uint64_t i = 0; i < 300; i++) b.sent(b.add(static_cast<int64_t>(i), "same-key", false));
  for (size_t i = 0; i < reports.size(); i++) {
    EXPECT_EQ(reports[i].err, 0) << reports[i].text;
    EXPECT_EQ(reports[i].tag, i) << "reports of one partition come in produce order";
    b.reported(reports[i].tag, reports[i].err, reports[i].text);
  }
  EXPECT_TRUE(b.complete());
  EXPECT_EQ(b.delivered_ids().size(), 300u);
}

TEST(RelayProducerMock, OversizeMessageRefusedAtOnceAsPermanent) {
  MockCluster mc(1);
  ASSERT_EQ(rd_kafka_mock_topic_create(mc.get(), "t", 1, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  std::vector<Report> reports;
  auto p = make_producer(mc.bootstraps(), &reports, {{"message.max.bytes", "10000"}});
  ASSERT_TRUE(p);
  std::string err;
  int rc = produce(*p, "t", "k", std::string(20000, 'x'), 1, &err);
  EXPECT_EQ(rc, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
  EXPECT_FALSE(err.empty());
  EXPECT_EQ(classify_error(rc), ErrorClass::kPermanent);
  EXPECT_EQ(produce(*p, "t", "k2", "small", 2), 0) << "the producer goes on";
  ASSERT_TRUE(p->flush(10000));
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].tag, 2u);
}

TEST(RelayProducerMock, BrokerRefusalReportedAsPermanent) {
  MockCluster mc(1);
  ASSERT_EQ(rd_kafka_mock_topic_create(mc.get(), "t", 1, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  std::vector<Report> reports;
  auto p = make_producer(mc.bootstraps(), &reports, {{"linger.ms", "0"}});
  ASSERT_TRUE(p);
  std::string perr;
  ASSERT_TRUE(p->probe(5000, &perr)) << perr;
  rd_kafka_mock_push_request_errors(mc.get(), kApiKeyProduce, 1, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
  ASSERT_EQ(produce(*p, "t", "k", "refused by the broker", 1), 0);
  ASSERT_TRUE(p->flush(10000));
  ASSERT_EQ(produce(*p, "t", "k", "accepted", 2), 0);
  ASSERT_TRUE(p->flush(10000));
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(reports[0].err, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
  EXPECT_EQ(classify_error(reports[0].err), ErrorClass::kPermanent);
  EXPECT_EQ(reports[1].err, 0);
}

TEST(RelayProducerMock, OutageIsReportedAndDeliveryResumes) {
  MockCluster mc(1);
  ASSERT_EQ(rd_kafka_mock_topic_create(mc.get(), "t", 2, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  std::vector<Report> reports;
  auto p = make_producer(mc.bootstraps(), &reports, {{"linger.ms", "0"}});
  ASSERT_TRUE(p);
  std::string perr;
  ASSERT_TRUE(p->probe(5000, &perr)) << perr;
  ASSERT_EQ(rd_kafka_mock_broker_set_down(mc.get(), 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  for (uint64_t i = 0; i < 20; i++) ASSERT_EQ(produce(*p, "t", "k" + std::to_string(i % 3), "v", i), 0);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!p->all_brokers_down() && std::chrono::steady_clock::now() < deadline) p->poll(100);
  EXPECT_TRUE(p->all_brokers_down()) << "the outage is reported through the error callback";
  EXPECT_FALSE(p->probe(300, &perr));
  EXPECT_TRUE(reports.empty()) << "nothing is reported lost while the broker is down";
  ASSERT_EQ(rd_kafka_mock_broker_set_up(mc.get(), 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_TRUE(p->flush(20000)) << "delivery resumes on its own";
  ASSERT_EQ(reports.size(), 20u);
  for (const auto& r : reports) EXPECT_EQ(r.err, 0) << r.text;
}

TEST(RelayProducerMock, TransactionalCallsSucceed) {
  MockCluster mc(1);
  ASSERT_EQ(rd_kafka_mock_topic_create(mc.get(), "t", 1, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_EQ(rd_kafka_mock_topic_create(mc.get(), "progress", 1, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  std::vector<Report> reports;
  auto p = make_producer(mc.bootstraps(), &reports, {}, true);
  ASSERT_TRUE(p);
  TxnResult r = p->init_transactions(10000);
  ASSERT_TRUE(r.ok) << r.message;
  for (int batch = 1; batch <= 3; batch++) {
    ASSERT_TRUE(p->begin_transaction().ok);
    for (uint64_t i = 0; i < 10; i++) ASSERT_EQ(produce(*p, "t", "k", "v", batch * 100 + i), 0);
    std::string value = encode_progress(batch, 10), err;
    ASSERT_EQ(p->produce("progress", 0, "relay", 5, false, value.data(), value.size(), false, {}, 999, &err),
              0)
        << err;
    r = p->commit_transaction(10000);
    ASSERT_TRUE(r.ok) << r.message;
  }
  p->poll(0);
  EXPECT_EQ(reports.size(), 33u);
  // An aborted transaction: its reports still come, and the producer goes on.
  ASSERT_TRUE(p->begin_transaction().ok);
  ASSERT_EQ(produce(*p, "t", "k", "v", 5000), 0);
  r = p->abort_transaction(10000);
  EXPECT_TRUE(r.ok) << r.message;
  ASSERT_TRUE(p->begin_transaction().ok);
  r = p->commit_transaction(10000);
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(RelayProducerMock, InvalidSettingNamedWithoutItsValue) {
  KafkaConfig cfg;
  cfg.brokers = "127.0.0.1:1";
  cfg.properties = {{"linger.ms", "not-a-number-s3cr3t"}};
  std::string error;
  auto p = Producer::create(cfg, &error);
  EXPECT_FALSE(p);
  EXPECT_NE(error.find("linger.ms"), std::string::npos) << error;
  EXPECT_EQ(error.find("s3cr3t"), std::string::npos) << error;
}
