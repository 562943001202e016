// go_bench: corio's scheduler benchmarks written in Go, for the same-run comparison that
// benchmarks/run prints (see benchmarks/programs/ for the corio versions and the shared contract).
//
// usage: go_bench skynet|fib|nqueens|fanout|pingpong|mpmc [--threads N] [--runs N] [--warmup N] [--n N]
//
// GOMAXPROCS is set to --threads (default 2; --workers is an alias). --warmup untimed runs
// (default 1), then --runs timed runs (default 5), each timed with time.Now around the root.
// Prints the result and the per-run times, then exactly one line `go_<name>=<median ms> unit=ms`.
// Exits 1 when a result is wrong, 2 on bad arguments. No dependencies: builds offline with the
// Debian golang-go toolchain (benchmarks/run: GOPROXY=off GOFLAGS=-mod=mod go build).
//
// Joining:
//   - skynet: the original benchmark (github.com/atemerev/skynet, skynet.go): every node is a
//     goroutine; a parent makes one unbuffered channel, starts its 10 children with it, and
//     receives 10 values.
//   - fib: every call is a goroutine (both fib(n-1) and fib(n-2) are started with `go`); the
//     parent receives the two values on a channel with capacity 2.
//   - nqueens: a goroutine per queen placed in the next row; the parent receives one value per
//     child on a channel with capacity = number of children.
//   - fanout: Go has no "foreign thread": the main goroutine starts all the goroutines, each writes
//     its value to its own slot, and a sync.WaitGroup joins them; then the main goroutine sums.
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

func skynet(c chan int64, num int64, size int64, div int64) {
	if size == 1 {
		c <- num
		return
	}
	rc := make(chan int64)
	var sum int64
	for i := int64(0); i < div; i++ {
		subNum := num + i*(size/div)
		go skynet(rc, subNum, size/div, div)
	}
	for i := int64(0); i < div; i++ {
		sum += <-rc
	}
	c <- sum
}

func fib(c chan int64, n int64) {
	if n < 2 {
		c <- n
		return
	}
	rc := make(chan int64, 2)
	go fib(rc, n-1)
	go fib(rc, n-2)
	c <- <-rc + <-rc
}

func nqueens(c chan int64, n, row uint, cols, d1, d2 uint32) {
	if row == n {
		c <- 1
		return
	}
	all := uint32(1)<<n - 1
	free := all &^ (cols | d1 | d2)
	k := 0
	for f := free; f != 0; f &= f - 1 {
		k++
	}
	rc := make(chan int64, k)
	for free != 0 {
		bit := free & -free
		free ^= bit
		go nqueens(rc, n, row+1, cols|bit, ((d1|bit)<<1)&all, (d2|bit)>>1)
	}
	var sum int64
	for i := 0; i < k; i++ {
		sum += <-rc
	}
	c <- sum
}

func fanout(n int64) int64 {
	results := make([]int64, n)
	var wg sync.WaitGroup
	wg.Add(int(n))
	for i := int64(0); i < n; i++ {
		go func(i int64) {
			results[i] = i
			wg.Done()
		}(i)
	}
	wg.Wait()
	var sum int64
	for _, v := range results {
		sum += v
	}
	return sum
}

// pingpong: two goroutines bounce a counter over two unbuffered channels, n round trips.
func pingpong(n int64) int64 {
	ping, pong := make(chan int64), make(chan int64)
	go func() {
		for v := range ping {
			pong <- v + 1
		}
	}()
	x := int64(0)
	for i := int64(0); i < n; i++ {
		ping <- x
		x = <-pong
	}
	close(ping)
	return x
}

// mpmc: 4 producers and 4 consumers on one channel of capacity 1024, n messages in all.
func mpmc(n int64) int64 {
	ch := make(chan int64, 1024)
	sums := make(chan int64)
	var wg sync.WaitGroup
	for p := int64(0); p < 4; p++ {
		wg.Add(1)
		go func(first int64) {
			defer wg.Done()
			for v := first; v < n; v += 4 {
				ch <- v
			}
		}(p)
	}
	for c := 0; c < 4; c++ {
		go func() {
			s := int64(0)
			for v := range ch {
				s += v
			}
			sums <- s
		}()
	}
	wg.Wait()
	close(ch)
	total := int64(0)
	for c := 0; c < 4; c++ {
		total += <-sums
	}
	return total
}

var nqueensCounts = []int64{1, 1, 0, 0, 2, 10, 4, 40, 92, 352, 724, 2680, 14200, 73712, 365596, 2279184, 14772512}

func usage(msg string) {
	fmt.Fprintf(os.Stderr, "go_bench: %s\nusage: go_bench skynet|fib|nqueens|fanout|pingpong|mpmc [--threads N] [--runs N] [--warmup N] [--n N]\n", msg)
	os.Exit(2)
}

func main() {
	args := os.Args[1:]
	if len(args) == 0 {
		usage("missing program name")
	}
	name := args[0]
	var n, loN, hiN int64
	switch name {
	case "skynet":
		n, loN, hiN = 1000000, 1, 10000000
	case "fib":
		n, loN, hiN = 30, 0, 40
	case "nqueens":
		n, loN, hiN = 11, 1, 14
	case "fanout", "pingpong", "mpmc":
		n, loN, hiN = 1000000, 1, 100000000
	default:
		usage("unknown program '" + name + "'")
	}
	threads, runs, warmup := int64(2), int64(5), int64(1)
	num := func(i int, lo, hi int64) int64 {
		if i+1 >= len(args) {
			usage(args[i] + " needs a value")
		}
		v, err := strconv.ParseInt(args[i+1], 10, 64)
		if err != nil || v < lo || v > hi {
			usage(fmt.Sprintf("%s: expected an integer in [%d, %d], got '%s'", args[i], lo, hi, args[i+1]))
		}
		return v
	}
	for i := 1; i < len(args); i += 2 {
		switch args[i] {
		case "--threads", "--workers":
			threads = num(i, 1, 256)
		case "--runs":
			runs = num(i, 1, 1000)
		case "--warmup":
			warmup = num(i, 0, 100)
		case "--n":
			n = num(i, loN, hiN)
		default:
			usage("unknown argument '" + args[i] + "'")
		}
	}
	var expected int64
	switch name {
	case "skynet":
		p := n
		for p%10 == 0 {
			p /= 10
		}
		if p != 1 {
			usage("skynet: --n must be a power of 10")
		}
		expected = n * (n - 1) / 2
	case "fib":
		a, b := int64(0), int64(1)
		for i := int64(0); i < n; i++ {
			a, b = b, a+b
		}
		expected = a
	case "nqueens":
		expected = nqueensCounts[n]
	case "pingpong":
		expected = n
	default:
		expected = n * (n - 1) / 2
	}
	runtime.GOMAXPROCS(int(threads))

	runOnce := func() int64 {
		switch name {
		case "fanout":
			return fanout(n)
		case "pingpong":
			return pingpong(n)
		case "mpmc":
			return mpmc(n)
		}
		c := make(chan int64)
		switch name {
		case "skynet":
			go skynet(c, 0, n, 10)
		case "fib":
			go fib(c, n)
		case "nqueens":
			go nqueens(c, uint(n), 0, 0, 0, 0)
		}
		return <-c
	}
	ok := true
	var result int64
	for i := int64(0); i < warmup; i++ {
		result = runOnce()
		ok = ok && result == expected
	}
	times := make([]float64, 0, runs)
	for i := int64(0); i < runs; i++ {
		t0 := time.Now()
		result = runOnce()
		times = append(times, float64(time.Since(t0).Nanoseconds())/1e6)
		ok = ok && result == expected
	}
	list := make([]string, len(times))
	for i, t := range times {
		list[i] = strconv.FormatFloat(t, 'f', 1, 64)
	}
	sorted := append([]float64(nil), times...)
	sort.Float64s(sorted)
	k := len(sorted)
	median := sorted[k/2]
	if k%2 == 0 {
		median = (sorted[k/2-1] + sorted[k/2]) / 2
	}
	fmt.Printf("go_%s: result %d (expected %d), GOMAXPROCS %d, n %d, warm-up %d, runs (ms): %s\n",
		name, result, expected, threads, n, warmup, strings.Join(list, " "))
	if !ok {
		fmt.Fprintf(os.Stderr, "go_bench: %s: WRONG RESULT %d, expected %d\n", name, result, expected)
		os.Exit(1)
	}
	fmt.Printf("go_%s=%.1f unit=ms\n", name, median)
	if name == "pingpong" || name == "mpmc" {
		fmt.Printf("go_%s_per_op=%.1f unit=ns\n", name, median*1e6/float64(n))
		fmt.Printf("go_%s_rate=%.0f unit=ops/s\n", name, float64(n)/(median/1e3))
	}
}
