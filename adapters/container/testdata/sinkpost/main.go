// Command sinkpost is a ContainerSource program for tests: it POSTs one binary-mode CloudEvent to
// $K_SINK, with the extensions of $K_CE_OVERRIDES, and reports its pid, arguments and a few
// environment variables in the event data.
//
// Its first argument chooses what it does after posting: "exit" (the default) exits 0; "stay" waits
// for SIGTERM, prints "got SIGTERM" and exits 0; "ignore-term" ignores SIGTERM and waits forever.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	mode := "exit"
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	terms := make(chan os.Signal, 1)
	switch mode {
	case "stay":
		signal.Notify(terms, syscall.SIGTERM)
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
	}
	if err := post(); err != nil {
		fmt.Fprintln(os.Stderr, "sinkpost:", err)
		os.Exit(1)
	}
	fmt.Println("posted event sinkpost-" + strconv.Itoa(os.Getpid()))
	fmt.Fprintln(os.Stderr, "a line on stderr")
	switch mode {
	case "stay":
		<-terms
		fmt.Println("got SIGTERM")
	case "ignore-term":
		select {}
	}
}

func post() error {
	var overrides struct {
		Extensions map[string]string `json:"extensions"`
	}
	if v := os.Getenv("K_CE_OVERRIDES"); v != "" {
		if err := json.Unmarshal([]byte(v), &overrides); err != nil {
			return fmt.Errorf("K_CE_OVERRIDES: %w", err)
		}
	}
	data, err := json.Marshal(map[string]any{
		"pid":  os.Getpid(),
		"args": os.Args[1:],
		"env": map[string]string{
			"GREETING":         os.Getenv("GREETING"),
			"TOKEN":            os.Getenv("TOKEN"),
			"EVENTGATE_SECRET": os.Getenv("EVENTGATE_SECRET"),
		},
	})
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPost, os.Getenv("K_SINK"), bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Ce-Specversion", "1.0")
	req.Header.Set("Ce-Id", "sinkpost-"+strconv.Itoa(os.Getpid()))
	req.Header.Set("Ce-Source", "/sinkpost")
	req.Header.Set("Ce-Type", "dev.eventgate.test.sinkpost")
	req.Header.Set("Content-Type", "application/json")
	for k, v := range overrides.Extensions {
		req.Header.Set("Ce-"+k, v)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("sink answered %s", resp.Status)
	}
	return nil
}
