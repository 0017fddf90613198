/*
 * Minimal C reader of the market-data shared-memory ring (layout: docs/SHM.md).
 *
 *   cc -O2 -std=c11 -o shm_reader examples/shm_reader.c
 *   ./shm_reader [--name market_data] [--from-oldest] [--count N] [--timeout SECONDS]
 *
 * Prints one line per record. Lock-free: the sequence words are read with C11
 * acquire loads; a record is printed only if its slot's sequence word is the
 * same (and even) before and after the copy. Exits 0 after --count records,
 * 2 on --timeout, 1 on errors. A writer restart (the segment file replaced)
 * is not followed here: see shm_reader.py for that logic.
 */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAGIC "MDSHRING"
#define LAYOUT_VERSION 1u
#define OFF_VERSION 8
#define OFF_HEADER_SIZE 12
#define OFF_SLOT_SIZE 16
#define OFF_SLOT_COUNT 20
#define OFF_GENERATION 24
#define OFF_WRITER_PID 32
#define OFF_CLOSED 48
#define OFF_BEAT 56 /* the writer's CLOCK_MONOTONIC ns at its last beat, every second */
#define WRITER_SILENT_NS 3000000000ULL
#define OFF_HEAD 64
#define SLOT_HEADER_SIZE 48
#define KIND_BOOK 1
#define KIND_TRADE 2
#define KIND_JSON 3
#define MAX_SLOT 65536

static uint64_t load_acquire(const uint8_t *base, size_t offset) {
    return atomic_load_explicit((_Atomic uint64_t *)(base + offset), memory_order_acquire);
}

/* little-endian field reads from a private copy (memcpy: no alignment assumptions) */
static uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static double rdf64(const uint8_t *p) { double v; memcpy(&v, p, 8); return v; }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void print_record(uint64_t seq, const uint8_t *slot) {
    /* slot is a private copy of the whole slot, starting at its sequence word */
    uint32_t length = rd32(slot + 8);
    uint16_t kind = rd16(slot + 12);
    unsigned symbol_len = slot[14];
    char symbol[25] = {0};
    memcpy(symbol, slot + 16, symbol_len > 24 ? 24 : symbol_len);
    int64_t local_ts = (int64_t)rd64(slot + 40);
    const uint8_t *body = slot + SLOT_HEADER_SIZE;

    if (kind == KIND_BOOK) {
        uint64_t update_id = rd64(body);
        int64_t event_ms = (int64_t)rd64(body + 8);
        unsigned n_bids = rd16(body + 16), n_asks = rd16(body + 18), state = body[20];
        const uint8_t *levels = body + 24;
        printf("book seq=%llu symbol=%s state=%u u=%llu E=%lld ts=%lld bids=%u asks=%u",
               (unsigned long long)seq, symbol, state, (unsigned long long)update_id,
               (long long)event_ms, (long long)local_ts, n_bids, n_asks);
        if (n_bids)
            printf(" bid=%.8g@%.8g", rdf64(levels), rdf64(levels + 8));
        if (n_asks)
            printf(" ask=%.8g@%.8g", rdf64(levels + 16 * n_bids), rdf64(levels + 16 * n_bids + 8));
        printf("\n");
    } else if (kind == KIND_TRADE) {
        printf("trade seq=%llu symbol=%s id=%llu price=%.8g qty=%.8g T=%lld maker=%u ts=%lld\n",
               (unsigned long long)seq, symbol, (unsigned long long)rd64(body), rdf64(body + 8),
               rdf64(body + 16), (long long)rd64(body + 24), body[32], (long long)local_ts);
    } else if (kind == KIND_JSON) {
        printf("json seq=%llu symbol=%s %.*s\n", (unsigned long long)seq, symbol, (int)length,
               (const char *)body);
    } else {
        printf("unknown seq=%llu kind=%u\n", (unsigned long long)seq, kind);
    }
}

/* With `run --workers N` each worker writes its own ring; /dev/shm/<name>.index
 * says which ring carries a symbol ("SYMBOL<TAB>segment" lines). Without an
 * index (one process) the ring is <name> itself. See docs/SHM.md. */
static const char *ring_for(const char *name, const char *symbol, char *out, size_t size) {
    char index[512], sym[32], seg[256];
    snprintf(index, sizeof index, "/dev/shm/%s.index", name);
    snprintf(out, size, "%s", name);
    FILE *f = fopen(index, "r");
    if (!f) return out;
    while (fscanf(f, "%31s %255s", sym, seg) == 2) {
        if (!strcmp(sym, symbol)) {
            char path[512];
            snprintf(path, sizeof path, "/dev/shm/%s", seg);
            if (access(path, F_OK) == 0) snprintf(out, size, "%s", seg); /* else: stale index */
            break;
        }
    }
    fclose(f);
    return out;
}

int main(int argc, char **argv) {
    const char *name = "market_data";
    const char *symbol = NULL;
    char resolved[256];
    int from_oldest = 0;
    long long count = -1;
    double timeout = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--name") && i + 1 < argc) name = argv[++i];
        else if (!strcmp(argv[i], "--symbol") && i + 1 < argc) symbol = argv[++i];
        else if (!strcmp(argv[i], "--from-oldest")) from_oldest = 1;
        else if (!strcmp(argv[i], "--count") && i + 1 < argc) count = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) timeout = atof(argv[++i]);
        else { fprintf(stderr, "usage: %s [--name N] [--symbol S] [--from-oldest] [--count N] [--timeout S]\n", argv[0]); return 1; }
    }

    if (symbol) name = ring_for(name, symbol, resolved, sizeof resolved);
    char path[512];
    snprintf(path, sizeof path, "/dev/shm/%s", name);
    int fd = open(path, O_RDONLY);
    if (fd < 0) { perror(path); return 1; }
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_size < 128) { fprintf(stderr, "%s: too small\n", path); return 1; }
    const uint8_t *base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (base == MAP_FAILED) { perror("mmap"); return 1; }

    if (memcmp(base, MAGIC, 8) != 0 || rd32(base + OFF_VERSION) != LAYOUT_VERSION) {
        fprintf(stderr, "%s: not a version %u ring\n", path, LAYOUT_VERSION);
        return 1;
    }
    uint32_t header_size = rd32(base + OFF_HEADER_SIZE);
    uint32_t slot_size = rd32(base + OFF_SLOT_SIZE);
    uint32_t slot_count = rd32(base + OFF_SLOT_COUNT);
    if (slot_size > MAX_SLOT || slot_size < 128 || slot_count < 2 ||
        (uint64_t)header_size + (uint64_t)slot_size * slot_count > (uint64_t)st.st_size) {
        fprintf(stderr, "%s: inconsistent header\n", path);
        return 1;
    }
    printf("attached %s generation=%llu pid=%llu slots=%ux%u\n", path,
           (unsigned long long)rd64(base + OFF_GENERATION),
           (unsigned long long)rd64(base + OFF_WRITER_PID), slot_count, slot_size);
    fflush(stdout);

    static uint8_t copy[MAX_SLOT];
    uint64_t head = load_acquire(base, OFF_HEAD);
    uint64_t next = head + 1;
    if (from_oldest) next = head >= slot_count ? head - slot_count + 1 : 1;
    uint64_t missed = 0;
    long long printed = 0;
    int silent_told = 0; /* a dead or hung writer leaves its books saying live: say so once */
    double deadline = timeout >= 0 ? now_s() + timeout : 0;

    while (count < 0 || printed < count) {
        head = load_acquire(base, OFF_HEAD);
        if (next > head) {
            if (timeout >= 0 && now_s() > deadline) return 2;
            if (load_acquire(base, OFF_CLOSED)) { printf("writer closed\n"); break; }
            uint64_t beat = load_acquire(base, OFF_BEAT);
            struct timespec mono;
            clock_gettime(CLOCK_MONOTONIC, &mono);
            uint64_t now_ns = (uint64_t)mono.tv_sec * 1000000000ULL + (uint64_t)mono.tv_nsec;
            int silent = beat != 0 && now_ns > beat + WRITER_SILENT_NS;
            if (silent && !silent_told) {
                printf("writer silent for %.0fs: its books are not current\n",
                       (double)(now_ns - beat) / 1e9);
                fflush(stdout);
            }
            silent_told = silent;
            struct timespec pause = {0, 50000};
            nanosleep(&pause, NULL);
            continue;
        }
        if (head >= slot_count && next < head - slot_count + 1) { /* lapped */
            missed += head - slot_count + 1 - next;
            next = head - slot_count + 1;
            printf("missed total=%llu\n", (unsigned long long)missed);
        }
        size_t offset = header_size + (size_t)((next - 1) % slot_count) * slot_size;
        uint64_t before = load_acquire(base, offset);
        if (before != 2 * next) { /* overwritten by a later lap: record lost */
            if (before > 2 * next) { missed++; next++; }
            continue;
        }
        memcpy(copy, base + offset, slot_size);
        atomic_thread_fence(memory_order_acquire); /* the copy happens before the re-check */
        if (load_acquire(base, offset) != before) { missed++; next++; continue; }
        uint32_t length = rd32(copy + 8);
        if (length > slot_size - SLOT_HEADER_SIZE) { missed++; next++; continue; }
        print_record(next, copy);
        printed++;
        next++;
    }
    fflush(stdout);
    return 0;
}
