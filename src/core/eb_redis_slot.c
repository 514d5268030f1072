/*
 * Redis Cluster key slots. The CRC is computed bit by bit: slots are
 * looked up when a configuration is loaded, not per event, so a table
 * would buy nothing.
 */

#include "eb_redis_slot.h"


/* CRC-16/XMODEM: polynomial 0x1021, initial value 0, no reflection */
uint16_t
eb_redis_crc16(const unsigned char *p, size_t len)
{
    int       bit;
    size_t    i;
    uint16_t  crc = 0;

    for (i = 0; i < len; i++) {
        crc ^= (uint16_t) (p[i] << 8);

        for (bit = 0; bit < 8; bit++) {
            crc = (crc & 0x8000) ? (uint16_t) ((crc << 1) ^ 0x1021)
                                 : (uint16_t) (crc << 1);
        }
    }

    return crc;
}


unsigned
eb_redis_key_slot(const char *key, size_t len)
{
    size_t  open, close;

    for (open = 0; open < len && key[open] != '{'; open++) {
        /* void */
    }

    if (open < len) {
        for (close = open + 1; close < len && key[close] != '}'; close++) {
            /* void */
        }

        /* "{}" or no '}': the whole key is hashed */
        if (close < len && close > open + 1) {
            key += open + 1;
            len = close - open - 1;
        }
    }

    return eb_redis_crc16((const unsigned char *) key, len)
           & (EB_REDIS_SLOTS - 1);
}
