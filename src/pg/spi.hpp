// SPI helpers. Hot statements are prepared once per backend and kept (SPI_keepplan);
// PostgreSQL's plan cache revalidates them after DDL, so they survive ALTER/DROP+CREATE.
#pragma once

#include <exception>
#include <initializer_list>

#include "pg/postgres.hpp"

namespace pgc::pg {

// A statement text with its argument types, prepared on first use.
// Declare as a function-local static: `static SavedPlan plan(sql, {INT8OID, TEXTOID});`
class SavedPlan {
 public:
  static constexpr int kMaxArgs = 16;
  SavedPlan(const char* sql, std::initializer_list<Oid> argtypes);

  // Runs the statement (SPI must be connected); returns SPI's result code, ereports on error.
  int execute(const Datum* values, const char* nulls, bool read_only, long count = 0);
  SPIPlanPtr plan();

 private:
  const char* sql_;
  int nargs_ = 0;
  Oid argtypes_[kMaxArgs] = {};
  SPIPlanPtr plan_ = nullptr;
};

// SPI_connect/SPI_finish as a scope; SPI_finish is also safe on the error path because
// an abort cleans SPI up, and the destructor skips it then.
class SpiScope {
 public:
  SpiScope();
  ~SpiScope();
  SpiScope(const SpiScope&) = delete;
  SpiScope& operator=(const SpiScope&) = delete;
  void finish();

 private:
  bool connected_ = false;
};

// SPI_connect, raising an ERROR when it fails: the one place the extension connects SPI
// (plain data; wrap it in pg_call where C++ objects are live).
void spi_connect();

// For a procedure called by CALL outside an explicit transaction block: when `fcinfo`'s
// call context allows it, connects SPI non-atomically (SPI_OPT_NONATOMIC) and returns
// true, so that spi_commit may end the transaction; otherwise connects as spi_connect
// does and returns false.
bool spi_connect_nonatomic_if_allowed(FunctionCallInfo fcinfo);
// SPI_commit: commits the current transaction, releasing its snapshots and locks, and
// starts a new one that holds none yet. Only after spi_connect_nonatomic_if_allowed
// returned true.
void spi_commit();

// A transaction of a background process's own (its loop runs outside transactions):
// statement start time, a snapshot, SPI connected, and `activity` (unless nullptr) shown in
// pg_stat_activity. Plain data, like spi_connect: wrap it in pg_call where C++ objects are
// live. An ERROR in between is cleaned up by the abort of the transaction.
void begin_worker_transaction(const char* activity);
// Ends what begin_worker_transaction began: SPI_finish, the snapshot popped, COMMIT.
void commit_worker_transaction();

// Reads column `col` (1-based) of row `row` of SPI_tuptable.
Datum spi_value(uint64 row, int col, bool* isnull);
// Column `col` of row `row` of the last SPI result as int64 (its fallback for NULL).
int64 spi_int64(uint64 row, int col, int64 if_null = 0);
// Text copied into the upper (caller's) memory context, or nullptr for NULL.
char* spi_text_copy(uint64 row, int col);

}  // namespace pgc::pg
