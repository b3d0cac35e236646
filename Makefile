# pg_consistency — built with PGXS like any PostgreSQL extension.
EXTENSION = pg_consistency
EXTVERSION := $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" $(EXTENSION).control)

include sources.mk
MODULE_big = pg_consistency
OBJS = $(CORE_SRCS:.cpp=.o) $(PG_SRCS:.cpp=.o)

# The install script is assembled from one file per pillar, in name order.
SQL_PARTS := $(sort $(wildcard src/sql/*.sql))
DATA_built = $(EXTENSION)--$(EXTVERSION).sql
# Released versions' install scripts, frozen (upgrade/SHA256SUMS), and the update scripts
# between versions: CREATE EXTENSION … VERSION 'A' and ALTER EXTENSION … UPDATE find them.
DATA = $(wildcard upgrade/$(EXTENSION)--*.sql)

REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --inputdir=. --outputdir=build/regress

PG_CONFIG ?= pg_config
PG_CPPFLAGS = -Isrc -isystem $(shell $(PG_CONFIG) --includedir-server) -isystem $(shell $(PG_CONFIG) --includedir) -DPGC_VERSION='"$(EXTVERSION)"'
PG_CXXFLAGS = -std=c++17 -Wall -Wextra -Wno-register -Wno-missing-field-initializers \
              -fvisibility-inlines-hidden -MMD -MP $(EXTRA_CXXFLAGS)
SHLIB_LINK = -lrdkafka -lpq -lstdc++ $(EXTRA_LDFLAGS)

# `make SANITIZE=1`: the library under AddressSanitizer + UBSan, for a server started with the
# ASan runtime preloaded (scripts/sanitize/postgres). UBSan reports and goes on, so one run
# lists every report; scripts/test-suite fails the run on any of them.
SANITIZE ?= 0
ifeq ($(SANITIZE),1)
SANITIZE_FLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer
PG_CXXFLAGS += $(SANITIZE_FLAGS)
SHLIB_LINK += $(SANITIZE_FLAGS)
endif
# Objects are rebuilt when the flavour changes (the stamp is rewritten only then).
FLAVOUR_STAMP := build/flavour
$(shell mkdir -p build; echo 'SANITIZE=$(SANITIZE)' | cmp -s - $(FLAVOUR_STAMP) || echo 'SANITIZE=$(SANITIZE)' > $(FLAVOUR_STAMP))
EXTRA_CLEAN = $(OBJS:.o=.d) build

# PGXS would also emit LLVM bitcode with clang, without our -std flag; the JIT gains
# nothing from this library, so skip it.
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# The library's version comes from the control file (PGC_VERSION).
src/pg/version.o: $(EXTENSION).control

$(EXTENSION)--$(EXTVERSION).sql: $(SQL_PARTS) $(EXTENSION).control
	cat $(SQL_PARTS) > $@

installcheck: | build/regress
build/regress:
	mkdir -p $@

$(OBJS): $(FLAVOUR_STAMP)

-include $(OBJS:.o=.d)
