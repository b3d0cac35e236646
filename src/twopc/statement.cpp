#include "twopc/statement.hpp"

#include <cctype>

namespace pgc::twopc {

namespace {

// PostgreSQL's lexer (scan.l): white space is [ \t\n\r\f] (\v is taken as well: at
// worst a statement the server would reject anyway is refused here); a -- comment runs
// to the next \n or \r; /* */ comments nest.
bool is_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// Skips white space and comments from position i; returns the new position, or npos
// when a block comment is not closed (the participant will report the syntax error).
std::size_t skip_space_and_comments(std::string_view s, std::size_t i) {
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (is_space(c)) {
      i++;
    } else if (c == '-' && i + 1 < s.size() && s[i + 1] == '-') {
      while (i < s.size() && s[i] != '\n' && s[i] != '\r') i++;
    } else if (c == '/' && i + 1 < s.size() && s[i + 1] == '*') {
      int depth = 1;
      i += 2;
      while (i < s.size() && depth > 0) {
        if (s[i] == '/' && i + 1 < s.size() && s[i + 1] == '*') {
          depth++;
          i += 2;
        } else if (s[i] == '*' && i + 1 < s.size() && s[i + 1] == '/') {
          depth--;
          i += 2;
        } else {
          i++;
        }
      }
      if (depth > 0) return std::string_view::npos;
    } else {
      break;
    }
  }
  return i;
}

// Also skips empty statements: the server drops them, so ";COMMIT" is one statement,
// COMMIT, even for the extended protocol that takes exactly one.
std::size_t skip_to_first_token(std::string_view s, std::size_t i) {
  for (;;) {
    i = skip_space_and_comments(s, i);
    if (i == std::string_view::npos || i >= s.size() || s[i] != ';') return i;
    i++;
  }
}

// An identifier or keyword as the lexer reads it: [A-Za-z\200-\377_][A-Za-z\200-\377_0-9$]*,
// upper-cased in ASCII only (keywords are matched that way). Empty when none starts at *i.
std::string take_word(std::string_view s, std::size_t* i) {
  std::string w;
  while (*i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[*i]);
    bool letter = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c >= 0x80;
    bool cont = (c >= '0' && c <= '9') || c == '$';
    if (!letter && !(cont && !w.empty())) break;
    w.push_back(c < 0x80 ? static_cast<char>(std::toupper(c)) : static_cast<char>(c));
    (*i)++;
  }
  return w;
}

}  // namespace

StatementInfo classify_statement(std::string_view sql) {
  StatementInfo info;
  std::size_t i = skip_to_first_token(sql, 0);
  if (i == std::string_view::npos) return info;  // unterminated comment: let the server say
  if (i >= sql.size()) {
    info.kind = StatementKind::kEmpty;
    return info;
  }
  std::string first = take_word(sql, &i);
  if (first.empty()) return info;
  if (first == "BEGIN" || first == "START" || first == "END" || first == "ABORT" || first == "SAVEPOINT" ||
      first == "RELEASE") {
    info.kind = StatementKind::kTransactionControl;
    info.keyword = first;
    return info;
  }
  if (first == "COMMIT" || first == "ROLLBACK" || first == "PREPARE") {
    std::size_t j = skip_space_and_comments(sql, i);
    std::string second = j == std::string_view::npos ? std::string() : take_word(sql, &j);
    if (first == "PREPARE") {
      // PREPARE name AS ... is an ordinary prepared statement.
      if (second != "TRANSACTION") return info;
      info.keyword = "PREPARE TRANSACTION";
    } else {
      info.keyword = second == "PREPARED" ? first + " PREPARED" : first;
    }
    info.kind = StatementKind::kTransactionControl;
  }
  return info;
}

std::optional<std::string> participant_name_problem(std::string_view name) {
  if (name.empty()) return std::string("name is empty");
  if (name.size() > 63) return std::string("name is longer than 63 characters");
  for (char c : name) {
    unsigned char u = static_cast<unsigned char>(c);
    if (!(std::isalnum(u) && u < 128) && c != '_' && c != '.' && c != '-')
      return std::string("name may contain only letters, digits, '_', '.' and '-'");
  }
  return std::nullopt;
}

}  // namespace pgc::twopc
