/* version.h: the version every program prints for --version; the Makefile sets it. */
/* Owns nothing: one macro. */
#ifndef AIRLOCK_VERSION_H
#define AIRLOCK_VERSION_H

#ifndef AIRLOCK_VERSION
#define AIRLOCK_VERSION "unknown"
#endif

#endif
