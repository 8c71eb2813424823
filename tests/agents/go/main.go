// A busy Go program that profiles itself with runtime/pprof, as the
// pyroscope-go SDK does. Usage: go run main.go OUT_DIR SECONDS
// Writes OUT_DIR/cpu.pb.gz (CPU profile of the run) and OUT_DIR/heap.pb.gz.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"time"
)

var retained [][]byte

func kilnGoFib(n int) int {
	if n < 2 {
		return n
	}
	return kilnGoFib(n-1) + kilnGoFib(n-2)
}

func kilnGoRetain() {
	for i := 0; i < 4; i++ {
		retained = append(retained, make([]byte, 4096))
	}
	if len(retained) > 4096 {
		retained = retained[:0]
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func main() {
	dir := os.Args[1]
	seconds, err := strconv.ParseFloat(os.Args[2], 64)
	check(err)
	runtime.MemProfileRate = 4096

	cpu, err := os.Create(filepath.Join(dir, "cpu.pb.gz"))
	check(err)
	check(pprof.StartCPUProfile(cpu))
	deadline := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	acc := 0
	for time.Now().Before(deadline) {
		acc += kilnGoFib(24)
		kilnGoRetain()
	}
	pprof.StopCPUProfile()
	check(cpu.Close())

	runtime.GC()
	heap, err := os.Create(filepath.Join(dir, "heap.pb.gz"))
	check(err)
	check(pprof.WriteHeapProfile(heap))
	check(heap.Close())
	fmt.Println("done", acc, len(retained))
}
