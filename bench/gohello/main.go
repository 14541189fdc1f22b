// Command gohello does nothing: the benchmark times fork+exec+wait of it,
// built static and stripped as crier is, as the floor for starting any Go
// program on the machine (docs/performance.md).
package main

func main() {}
