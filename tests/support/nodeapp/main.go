// nodeapp: the workload of the test bed's real node (tests/functional/test_real_node.py),
// a static program in an image made here (tests/support/node.py, ociimage.py): no image
// can be pulled on these machines. Built and cached by tools/build-testbin (node).
//
//	nodeapp serve PORT TEXT...  answer GET / with TEXT (and GET /healthz with "ok") until
//	                            SIGTERM, then say so and exit 0
//	nodeapp say CODE TEXT...    print TEXT on stdout and exit with CODE
package main

import (
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: nodeapp serve PORT TEXT... | nodeapp say CODE TEXT...")
		os.Exit(2)
	}
	text := strings.Join(os.Args[3:], " ")
	switch os.Args[1] {
	case "say":
		code, err := strconv.Atoi(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, "nodeapp say: CODE must be a number")
			os.Exit(2)
		}
		fmt.Println(text)
		os.Exit(code)
	case "serve":
		http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintln(w, text)
		})
		http.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintln(w, "ok")
		})
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
		go func() {
			s := <-sigs
			fmt.Printf("nodeapp: %v, stopping\n", s)
			os.Exit(0)
		}()
		fmt.Printf("nodeapp: serving %q on :%s\n", text, os.Args[2])
		if err := http.ListenAndServe(":"+os.Args[2], nil); err != nil {
			fmt.Fprintln(os.Stderr, "nodeapp:", err)
			os.Exit(1)
		}
	default:
		fmt.Fprintf(os.Stderr, "nodeapp: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
}
