// The one place C++ code includes PostgreSQL's C headers: inside extern "C", and with
// the macros that clash with the C++ standard library undone afterwards.
#pragma once

extern "C" {
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/elog.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
}

// c.h defines these as macros; they break <algorithm> and friends.
#undef min
#undef max
#undef gettext
#undef dgettext
#undef ngettext
#undef dngettext
