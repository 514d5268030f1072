/*
 * Redis Cluster key slots: CRC16 (XMODEM, as the Cluster specification
 * defines it) of the key's hash tag, modulo 16384. Every key of a bus
 * (eb:{BUS}:...) shares the tag {BUS}, so a bus lives on one slot and an
 * event's MULTI/EXEC never crosses nodes.
 */

#ifndef EB_REDIS_SLOT_H
#define EB_REDIS_SLOT_H

#include <stddef.h>
#include <stdint.h>


#define EB_REDIS_SLOTS  16384


uint16_t eb_redis_crc16(const unsigned char *p, size_t len);

/* The slot of a key: only the part between the first '{' and the next '}'
 * is hashed when it is not empty, else the whole key. */
unsigned eb_redis_key_slot(const char *key, size_t len);

#endif /* EB_REDIS_SLOT_H */
