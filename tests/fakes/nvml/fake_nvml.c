/*
 * fake_nvml.c - a stand-in for libnvidia-ml.so.1 on machines without GPUs.
 *
 * It fakes only the hardware boundary: the real nvidia-ml-py bindings
 * (pynvml) load it through ctypes exactly as they would load the driver's
 * library, so the code under test runs unchanged.
 *
 * The "hardware" is a text file named by $FAKE_NVML_STATE (format in
 * ../README.md).  The file is re-read on every call that looks at state, so
 * a test can rewrite it while a process keeps NVML initialised.  Handles
 * are pointers into static arrays indexed by GPU index (and MIG slot), so
 * a handle stays valid across re-reads as long as the device is listed.
 *
 * Only the symbols below exist; pynvml raises NVMLError_FunctionNotFound
 * for anything else, as it would with an old driver.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- NVML ABI (the subset of nvml.h we need; layouts match pynvml) ---- */

typedef int nvmlReturn_t; /* an enum in nvml.h: int-sized */
enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_NOT_FOUND = 6,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_DRIVER_NOT_LOADED = 9,
    NVML_ERROR_GPU_IS_LOST = 15,
    NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
    NVML_ERROR_UNKNOWN = 999,
};

typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct {
    unsigned int version;
    unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;
/* NVML struct versions are sizeof(struct) | (version << 24). */
#define nvmlMemory_v2 ((unsigned int)(sizeof(nvmlMemory_v2_t) | (2u << 24)))
_Static_assert(sizeof(nvmlMemory_v2_t) == 40, "nvmlMemory_v2 is 0x02000028");

typedef struct { unsigned int gpu, memory; } nvmlUtilization_t;

/* Plain nvmlDeviceGetComputeRunningProcesses is the v1 ABI... */
typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
} nvmlProcessInfo_v1_t;
/* ...while _v2 and _v3 share this layout (pynvml: c_nvmlProcessInfo_v2_t). */
typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_v2_t;

#define NO_INSTANCE 0xFFFFFFFFu /* gpu/computeInstanceId of a non-MIG process */

/* ---- fake state ---- */

#define MAX_GPUS 128  /* benchmarks give every one of 50 users a GPU */
#define MAX_MIGS 7    /* per GPU; also what GetMaxMigDeviceCount reports */
#define MAX_PROCS 256
#define STR_LEN 96    /* NVML_DEVICE_UUID_V2_BUFFER_SIZE, ..._NAME_V2_... */

/* One GPU or MIG device.  Field names are the state-file keys. */
struct dev {
    int present, is_mig;
    unsigned int index;  /* GPU index, or MIG slot under its parent */
    unsigned int parent; /* MIG only: parent GPU index */
    char uuid[STR_LEN], name[STR_LEN];
    unsigned long long mem_total, mem_used;
    unsigned int util_gpu, util_mem, temp, power_mw, lost, mig;
};

struct proc {
    char uuid[STR_LEN];
    unsigned int pid;
    unsigned long long mem;
};

struct state {
    unsigned int loaded, hang;
    char version[80]; /* NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE */
    unsigned int ngpus, nprocs;
    struct dev gpus[MAX_GPUS];
    struct dev migs[MAX_GPUS][MAX_MIGS];
    struct proc procs[MAX_PROCS];
};

typedef struct dev *nvmlDevice_t; /* opaque in nvml.h */

/* `cur` is what handles point into; `next` is the parse scratch area, so a
 * malformed file never leaves `cur` half-written. */
static struct state cur, next;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int init_count;

/* ---- state-file parser ---- */

enum kind { K_UINT, K_U64, K_STR, K_NAME /* '_' means ' ' */ };
struct key {
    const char *name;
    enum kind kind;
    size_t off, size;
};
#define KEY(T, f, k) { #f, k, offsetof(T, f), sizeof(((T *)0)->f) }

static const struct key driver_keys[] = {
    KEY(struct state, version, K_STR), KEY(struct state, loaded, K_UINT),
    KEY(struct state, hang, K_UINT), {0}};
static const struct key gpu_keys[] = {
    KEY(struct dev, index, K_UINT),     KEY(struct dev, uuid, K_STR),
    KEY(struct dev, name, K_NAME),      KEY(struct dev, mem_total, K_U64),
    KEY(struct dev, mem_used, K_U64),   KEY(struct dev, util_gpu, K_UINT),
    KEY(struct dev, util_mem, K_UINT),  KEY(struct dev, temp, K_UINT),
    KEY(struct dev, power_mw, K_UINT),  KEY(struct dev, lost, K_UINT),
    KEY(struct dev, mig, K_UINT),       {0}};
static const struct key mig_keys[] = {
    KEY(struct dev, parent, K_UINT),    KEY(struct dev, index, K_UINT),
    KEY(struct dev, uuid, K_STR),       KEY(struct dev, name, K_NAME),
    KEY(struct dev, mem_total, K_U64),  KEY(struct dev, mem_used, K_U64),
    {0}};
static const struct key proc_keys[] = {
    KEY(struct proc, uuid, K_STR), KEY(struct proc, pid, K_UINT),
    KEY(struct proc, mem, K_U64), {0}};

static const char *err_path;
static int err_line;

/* Parse errors go to stderr: the test author needs to see them. */
static int bad(const char *msg, const char *tok)
{
    if (err_line > 0) /* 0: a check across records, no single line */
        fprintf(stderr, "fake_nvml: %s:%d: ", err_path, err_line);
    else fprintf(stderr, "fake_nvml: %s: ", err_path);
    fprintf(stderr, "%s%s%s\n", msg, tok ? ": " : "", tok ? tok : "");
    return -1;
}

static int set_key(void *base, const struct key *keys, char *tok)
{
    char *val = strchr(tok, '=');
    if (!val) return bad("expected key=value", tok);
    *val++ = '\0';
    const struct key *k = keys;
    while (k->name && strcmp(k->name, tok) != 0)
        k++;
    if (!k->name) return bad("unknown key", tok);
    char *dst = (char *)base + k->off, *end;
    if (k->kind == K_STR || k->kind == K_NAME) {
        if (strlen(val) >= k->size) return bad("value too long", val);
        strcpy(dst, val);
        for (char *p = dst; k->kind == K_NAME && *p; p++)
            if (*p == '_') *p = ' ';
        return 0;
    }
    errno = 0;
    unsigned long long v = strtoull(val, &end, 10);
    if (!isdigit((unsigned char)*val) || *end || errno ||
        (k->kind == K_UINT && v > 0xFFFFFFFFull))
        return bad("bad number", val);
    if (k->kind == K_UINT) *(unsigned int *)dst = (unsigned int)v;
    else *(unsigned long long *)dst = v;
    return 0;
}

/* Apply all key=value tokens left on the line to `base`. */
static int set_keys(void *base, const struct key *keys, char **save)
{
    char *tok;
    while ((tok = strtok_r(NULL, " \t\r\n", save)) && tok[0] != '#')
        if (set_key(base, keys, tok)) return -1;
    return 0;
}

static const struct dev *find_uuid(const struct state *s, const char *uuid)
{
    for (unsigned int g = 0; g < MAX_GPUS; g++) {
        if (s->gpus[g].present && !strcmp(s->gpus[g].uuid, uuid))
            return &s->gpus[g];
        for (unsigned int m = 0; m < MAX_MIGS; m++)
            if (s->migs[g][m].present && !strcmp(s->migs[g][m].uuid, uuid))
                return &s->migs[g][m];
    }
    return NULL;
}

static int parse_line(char *line)
{
    char *save, *type = strtok_r(line, " \t\r\n", &save);
    if (!type || type[0] == '#') return 0;
    if (!strcmp(type, "driver")) return set_keys(&next, driver_keys, &save);
    if (!strcmp(type, "proc")) {
        struct proc p = {0};
        if (set_keys(&p, proc_keys, &save)) return -1;
        if (!p.uuid[0] || !p.pid) return bad("proc needs uuid= and pid=", NULL);
        if (next.nprocs == MAX_PROCS) return bad("too many proc records", NULL);
        next.procs[next.nprocs++] = p;
        return 0;
    }
    int is_mig = !strcmp(type, "mig");
    if (!is_mig && strcmp(type, "gpu")) return bad("unknown record type", type);
    struct dev d = {.index = ~0u, .parent = ~0u};
    if (set_keys(&d, is_mig ? mig_keys : gpu_keys, &save)) return -1;
    if (!d.uuid[0] || d.index == ~0u || (is_mig && d.parent == ~0u))
        return bad(is_mig ? "mig needs parent=, index= and uuid="
                          : "gpu needs index= and uuid=", NULL);
    if (find_uuid(&next, d.uuid)) return bad("duplicate uuid", d.uuid);
    struct dev *slot;
    if (is_mig) {
        if (d.parent >= MAX_GPUS || d.index >= MAX_MIGS)
            return bad("mig parent= or index= out of range", NULL);
        slot = &next.migs[d.parent][d.index];
    } else {
        if (d.index >= MAX_GPUS) return bad("gpu index= out of range", NULL);
        slot = &next.gpus[d.index];
        next.ngpus++;
    }
    if (slot->present) return bad("duplicate index", NULL);
    d.present = 1;
    d.is_mig = is_mig;
    *slot = d;
    return 0;
}

/* Parse the whole file into `next`; 0 on success. */
static int parse(FILE *f)
{
    char line[4096];
    memset(&next, 0, sizeof next);
    next.loaded = 1;
    strcpy(next.version, "550.54.15");
    for (err_line = 1; fgets(line, sizeof line, f); err_line++) {
        if (!strchr(line, '\n') && !feof(f)) return bad("line too long", NULL);
        if (parse_line(line)) return -1;
    }
    /* Cross-record checks, so a typo fails loudly instead of hiding data. */
    err_line = 0;
    for (unsigned int g = 0; g < next.ngpus; g++)
        if (!next.gpus[g].present)
            return bad("gpu indexes must be 0..count-1 without gaps", NULL);
    for (unsigned int g = 0; g < MAX_GPUS; g++)
        for (unsigned int m = 0; m < MAX_MIGS; m++)
            if (next.migs[g][m].present &&
                (!next.gpus[g].present || !next.gpus[g].mig))
                return bad("mig record whose parent gpu is missing or has mig=0",
                           next.migs[g][m].uuid);
    for (unsigned int i = 0; i < next.nprocs; i++)
        if (!find_uuid(&next, next.procs[i].uuid))
            return bad("proc on an unknown uuid", next.procs[i].uuid);
    return 0;
}

#define HANGING (-1) /* read_state(): the file says hang=1 */

/* Parse the state file; on success copy it into `cur`.  Caller holds the lock. */
static nvmlReturn_t read_state(void)
{
    const char *path = getenv("FAKE_NVML_STATE");
    FILE *f = path && *path ? fopen(path, "r") : NULL;
    if (!f)
        return NVML_ERROR_DRIVER_NOT_LOADED; /* no file = no driver */
    err_path = path;
    int rc = parse(f);
    fclose(f);
    if (rc) return NVML_ERROR_UNKNOWN;
    if (next.hang) return HANGING;
    memcpy(&cur, &next, sizeof cur);
    return cur.loaded ? NVML_SUCCESS : NVML_ERROR_DRIVER_NOT_LOADED;
}

/* Re-read the state file into `cur`.  Caller holds the lock.
 *
 * hang=1 is a wedged GPU or driver: the call blocks until the file says
 * otherwise, then goes on with the new state.  It polls with short sleeps
 * and lets go of the lock meanwhile, so every thread's calls block alike
 * (as on a wedged driver) and all return once the flag clears. */
static nvmlReturn_t reload(void)
{
    nvmlReturn_t rc;
    const struct timespec pause = {0, 20 * 1000 * 1000}; /* 20 ms */
    while ((rc = read_state()) == HANGING) {
        pthread_mutex_unlock(&lock);
        nanosleep(&pause, NULL);
        pthread_mutex_lock(&lock);
    }
    return rc;
}

/* ---- call prologue/epilogue: every entry point is serialised ---- */

/* Lock, require nvmlInit, re-read the file.  The lock is held even on
 * error: always leave through end(). */
static nvmlReturn_t begin(void)
{
    pthread_mutex_lock(&lock);
    if (init_count == 0) return NVML_ERROR_UNINITIALIZED;
    return reload();
}

static nvmlReturn_t end(nvmlReturn_t rc)
{
    pthread_mutex_unlock(&lock);
    return rc;
}

/* begin() plus handle checks: it must point at a device the file still
 * lists; a lost GPU (or a MIG device on one) fails every query. */
static nvmlReturn_t begin_dev(nvmlDevice_t d)
{
    nvmlReturn_t rc = begin();
    if (rc) return rc;
    uintptr_t p = (uintptr_t)d;
    int in_gpus = p >= (uintptr_t)cur.gpus &&
                  p < (uintptr_t)(cur.gpus + MAX_GPUS);
    int in_migs = p >= (uintptr_t)cur.migs &&
                  p < (uintptr_t)(cur.migs + MAX_GPUS);
    if (!(in_gpus || in_migs) || !d->present)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (d->lost || (d->is_mig && cur.gpus[d->parent].lost))
        return NVML_ERROR_GPU_IS_LOST;
    return NVML_SUCCESS;
}

/* Queries that only make sense on a physical GPU, not a MIG device. */
static nvmlReturn_t begin_gpu(nvmlDevice_t d)
{
    nvmlReturn_t rc = begin_dev(d);
    return rc ? rc : d->is_mig ? NVML_ERROR_NOT_SUPPORTED : NVML_SUCCESS;
}

static nvmlReturn_t put_str(char *dst, unsigned int len, const char *src)
{
    if (!dst) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(src) >= len) return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(dst, src);
    return NVML_SUCCESS;
}

/* Entry-point prologue: run `check` (begin, begin_dev or begin_gpu) and
 * require the out-pointer(s) `out`; on failure unlock and return the error. */
#define ENTER(check, out)                                                  \
    do {                                                                   \
        nvmlReturn_t rc_ = (check);                                        \
        if (rc_) return end(rc_);                                          \
        if (!(out)) return end(NVML_ERROR_INVALID_ARGUMENT);               \
    } while (0)

/* ---- init / system ---- */

nvmlReturn_t nvmlInitWithFlags(unsigned int flags)
{
    (void)flags;
    pthread_mutex_lock(&lock);
    nvmlReturn_t rc = reload();
    if (rc == NVML_SUCCESS) init_count++;
    return end(rc);
}
nvmlReturn_t nvmlInit_v2(void) { return nvmlInitWithFlags(0); }
nvmlReturn_t nvmlInit(void) { return nvmlInitWithFlags(0); }

nvmlReturn_t nvmlShutdown(void)
{
    pthread_mutex_lock(&lock);
    if (init_count > 0) init_count--;
    return end(NVML_SUCCESS);
}

const char *nvmlErrorString(nvmlReturn_t r)
{
    switch (r) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NOT_FOUND: return "Not Found";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    case NVML_ERROR_ARGUMENT_VERSION_MISMATCH: return "Argument version mismatch";
    case NVML_ERROR_UNKNOWN: return "Unknown Error (fake_nvml: bad state file?)";
    default: return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int len)
{
    nvmlReturn_t rc = begin();
    return end(rc ? rc : put_str(version, len, cur.version));
}

/* ---- enumeration ---- */

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count)
{
    ENTER(begin(), count);
    *count = cur.ngpus;
    return end(NVML_SUCCESS);
}
nvmlReturn_t nvmlDeviceGetCount(unsigned int *count)
{ return nvmlDeviceGetCount_v2(count); }

/* Succeeds even for a lost GPU: NVML hands out the handle, queries fail. */
nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *dev)
{
    ENTER(begin(), dev);
    if (index >= cur.ngpus) return end(NVML_ERROR_INVALID_ARGUMENT);
    *dev = &cur.gpus[index];
    return end(NVML_SUCCESS);
}
nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int index, nvmlDevice_t *dev)
{ return nvmlDeviceGetHandleByIndex_v2(index, dev); }

/* GPU or MIG UUID; handy for code that maps NVIDIA_VISIBLE_DEVICES. */
nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *dev)
{
    ENTER(begin(), uuid && dev);
    const struct dev *d = find_uuid(&cur, uuid);
    if (!d) return end(NVML_ERROR_NOT_FOUND);
    *dev = (nvmlDevice_t)d;
    return end(NVML_SUCCESS);
}

/* ---- per-device queries ---- */

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *uuid, unsigned int len)
{
    nvmlReturn_t rc = begin_dev(d);
    return end(rc ? rc : put_str(uuid, len, d->uuid));
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *name, unsigned int len)
{
    nvmlReturn_t rc = begin_dev(d);
    return end(rc ? rc : put_str(name, len, d->name));
}

nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t d, unsigned int *index)
{
    ENTER(begin_gpu(d), index);
    *index = d->index;
    return end(NVML_SUCCESS);
}

static unsigned long long mem_free(const struct dev *d)
{
    return d->mem_used < d->mem_total ? d->mem_total - d->mem_used : 0;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *mem)
{
    ENTER(begin_dev(d), mem);
    mem->total = d->mem_total;
    mem->used = d->mem_used;
    mem->free = mem_free(d);
    return end(NVML_SUCCESS);
}

/* Versioned struct: like real NVML, refuse a version we don't know. */
nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t *mem)
{
    ENTER(begin_dev(d), mem);
    if (mem->version != nvmlMemory_v2)
        return end(NVML_ERROR_ARGUMENT_VERSION_MISMATCH);
    mem->total = d->mem_total;
    mem->reserved = 0;
    mem->used = d->mem_used;
    mem->free = mem_free(d);
    return end(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *u)
{
    ENTER(begin_gpu(d), u);
    u->gpu = d->util_gpu;
    u->memory = d->util_mem;
    return end(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, int sensor,
                                      unsigned int *temp)
{
    ENTER(begin_gpu(d), temp);
    if (sensor != 0) /* NVML_TEMPERATURE_GPU is the only sensor */
        return end(NVML_ERROR_INVALID_ARGUMENT);
    *temp = d->temp;
    return end(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned int *mw)
{
    ENTER(begin_gpu(d), mw);
    *mw = d->power_mw;
    return end(NVML_SUCCESS);
}

/* NVML's two-call protocol: if *count is too small (pynvml first passes
 * 0 and NULL), set *count to the number needed and return
 * INSUFFICIENT_SIZE; otherwise fill the array and set *count. */
static nvmlReturn_t get_procs(nvmlDevice_t d, unsigned int *count, void *infos,
                              int v1)
{
    ENTER(begin_dev(d), count);
    unsigned int need = 0, n = 0;
    for (unsigned int i = 0; i < cur.nprocs; i++)
        need += !strcmp(cur.procs[i].uuid, d->uuid);
    if (*count < need) {
        *count = need;
        return end(NVML_ERROR_INSUFFICIENT_SIZE);
    }
    if (need && !infos) return end(NVML_ERROR_INVALID_ARGUMENT);
    for (unsigned int i = 0; i < cur.nprocs; i++) {
        const struct proc *p = &cur.procs[i];
        if (strcmp(p->uuid, d->uuid)) continue;
        if (v1) {
            nvmlProcessInfo_v1_t *o = (nvmlProcessInfo_v1_t *)infos + n++;
            o->pid = p->pid;
            o->usedGpuMemory = p->mem;
        } else {
            nvmlProcessInfo_v2_t *o = (nvmlProcessInfo_v2_t *)infos + n++;
            o->pid = p->pid;
            o->usedGpuMemory = p->mem;
            /* Real NVML: instance ids only mean something on MIG. */
            o->gpuInstanceId = d->is_mig ? 0 : NO_INSTANCE;
            o->computeInstanceId = d->is_mig ? 0 : NO_INSTANCE;
        }
    }
    *count = n;
    return end(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(
    nvmlDevice_t d, unsigned int *count, nvmlProcessInfo_v2_t *infos)
{ return get_procs(d, count, infos, 0); }
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(
    nvmlDevice_t d, unsigned int *count, nvmlProcessInfo_v2_t *infos)
{ return get_procs(d, count, infos, 0); }
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(
    nvmlDevice_t d, unsigned int *count, nvmlProcessInfo_v1_t *infos)
{ return get_procs(d, count, infos, 1); }

/* ---- MIG ---- */

nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t d, unsigned int *current,
                                  unsigned int *pending)
{
    ENTER(begin_gpu(d), current && pending);
    *current = *pending = d->mig ? 1 : 0;
    return end(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t d, unsigned int *count)
{
    ENTER(begin_gpu(d), count);
    *count = d->mig ? MAX_MIGS : 0;
    return end(NVML_SUCCESS);
}

/* Slots may be sparse, as on real hardware: callers loop 0..max-1 and
 * skip NOT_FOUND. */
nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t d,
                                                 unsigned int index,
                                                 nvmlDevice_t *mig)
{
    ENTER(begin_gpu(d), mig);
    if (index >= MAX_MIGS) return end(NVML_ERROR_INVALID_ARGUMENT);
    if (!cur.migs[d->index][index].present) return end(NVML_ERROR_NOT_FOUND);
    *mig = &cur.migs[d->index][index];
    return end(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceIsMigDeviceHandle(nvmlDevice_t d, unsigned int *is_mig)
{
    ENTER(begin_dev(d), is_mig);
    *is_mig = d->is_mig ? 1 : 0;
    return end(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetDeviceHandleFromMigDeviceHandle(nvmlDevice_t d,
                                                          nvmlDevice_t *parent)
{
    ENTER(begin_dev(d), parent);
    if (!d->is_mig) return end(NVML_ERROR_INVALID_ARGUMENT);
    *parent = &cur.gpus[d->parent];
    return end(NVML_SUCCESS);
}
