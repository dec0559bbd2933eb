// A C program as distributions build them, for futex-trace's stack tests: glibc's locks, no help.
//   contend SECONDS [THREADS]
// THREADS workers (4) contend on one pthread mutex: worker → do_work → take_lock →
// pthread_mutex_lock; two writers contend on a rwlock (rw_worker → write_lock →
// pthread_rwlock_wrlock). For the whole run one thread waits on a condition variable
// (wait_for_the_end → pthread_cond_wait), one on a semaphore (wait_on_semaphore → sem_wait), one in a
// raw futex wait through glibc's syscall() (wait_raw → syscall), and main waits for all of them in
// pthread_join. Built by the tests twice: -fno-omit-frame-pointer and -fomit-frame-pointer (-O2 both).
#include <linux/futex.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t end_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t end_cond = PTHREAD_COND_INITIALIZER;
static volatile int stop;
static int ended;
static pthread_rwlock_t rwlock = PTHREAD_RWLOCK_INITIALIZER;
static sem_t sem;
static volatile unsigned int raw_word;
static volatile unsigned long counter;
static volatile unsigned long taken;
static volatile unsigned long written;

// Counts after the call, so that the call is not a tail call (take_lock stays on the stack).
__attribute__((noinline)) void take_lock(void)
{
    pthread_mutex_lock(&lock);
    taken++;
}

__attribute__((noinline)) void do_work(void)
{
    take_lock();
    for (int i = 0; i < 300; i++)
        counter++;
    pthread_mutex_unlock(&lock);
}

static void *worker(void *arg)
{
    (void)arg;
    while (!stop) {
        do_work();
        for (volatile int i = 0; i < 100; i++)
            ;
    }
    return NULL;
}

__attribute__((noinline)) void write_lock(void)
{
    pthread_rwlock_wrlock(&rwlock);
    written++;
}

static void *rw_worker(void *arg)
{
    (void)arg;
    while (!stop) {
        write_lock();
        for (int i = 0; i < 300; i++)
            counter++;
        pthread_rwlock_unlock(&rwlock);
        for (volatile int i = 0; i < 100; i++)
            ;
    }
    return NULL;
}

__attribute__((noinline)) void wait_on_semaphore(void)
{
    while (sem_wait(&sem) != 0)
        ;
    taken++;
}

static void *sem_waiter(void *arg)
{
    (void)arg;
    wait_on_semaphore();
    return NULL;
}

__attribute__((noinline)) void wait_raw(void)
{
    while (!raw_word)
        syscall(SYS_futex, &raw_word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    taken++;
}

static void *raw_waiter(void *arg)
{
    (void)arg;
    wait_raw();
    return NULL;
}

__attribute__((noinline)) void wait_for_the_end(void)
{
    pthread_mutex_lock(&end_lock);
    while (!ended)
        pthread_cond_wait(&end_cond, &end_lock);
    pthread_mutex_unlock(&end_lock);
}

static void *waiter(void *arg)
{
    (void)arg;
    wait_for_the_end();
    return NULL;
}

static void *timer(void *arg)
{
    double secs = *(double *)arg;
    struct timespec ts = {(time_t)secs, (long)((secs - (time_t)secs) * 1e9)};
    nanosleep(&ts, NULL);
    stop = 1;
    sem_post(&sem);
    raw_word = 1;
    syscall(SYS_futex, &raw_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    pthread_mutex_lock(&end_lock);
    ended = 1;
    pthread_cond_broadcast(&end_cond);
    pthread_mutex_unlock(&end_lock);
    return NULL;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 2;
    int n = argc > 2 ? atoi(argv[2]) : 4;
    pthread_t t[64], rw[2], w, sw, rawt, tm;
    if (n < 1 || n > 64)
        return 2;
    sem_init(&sem, 0, 0);
    for (int i = 0; i < n; i++)
        pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < 2; i++)
        pthread_create(&rw[i], NULL, rw_worker, NULL);
    pthread_create(&w, NULL, waiter, NULL);
    pthread_create(&sw, NULL, sem_waiter, NULL);
    pthread_create(&rawt, NULL, raw_waiter, NULL);
    pthread_create(&tm, NULL, timer, &secs);
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++)
        pthread_join(rw[i], NULL);
    pthread_join(w, NULL);
    pthread_join(sw, NULL);
    pthread_join(rawt, NULL);
    pthread_join(tm, NULL);
    printf("%lu\n", counter);
    return 0;
}
