package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// printTable writes the report as one aligned table, then its notes and errors.
func printTable(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "\neventgate benchmark, %s, %s CPUs (%s), %s\n\n", rep.Date, rep.Machine["cpus"], rep.Machine["cpu"], rep.Machine["go"])
	head := []string{"path", "unit", "eventgate", "baseline", "ratio", "target", "eventgate min/med/max", "baseline min/med/max"}
	rows := [][]string{head}
	for _, r := range rep.Rows {
		ratio, target := "-", r.Target
		if r.Ratio != nil {
			ratio = fmt.Sprintf("%.2f", *r.Ratio)
		}
		if r.Pass != nil {
			target += map[bool]string{true: " ok", false: " MISSED"}[*r.Pass]
		}
		if target == "" {
			target = "-"
		}
		rows = append(rows, []string{r.Path, r.Unit, median(r.Eventgate), median(r.Baseline), ratio, target,
			noise(r.Eventgate), noise(r.Baseline)})
	}
	widths := make([]int, len(head))
	for _, row := range rows {
		for i, c := range row {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	for n, row := range rows {
		var b strings.Builder
		for i, c := range row {
			b.WriteString(c)
			if i < len(row)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-len([]rune(c))+2))
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
		if n == 0 {
			fmt.Fprintln(w, strings.Repeat("-", len([]rune(b.String()))))
		}
	}
	fmt.Fprintln(w)
	for _, r := range rep.Rows {
		if r.Note != "" {
			fmt.Fprintf(w, "  %s: %s\n", r.Path, r.Note)
		}
	}
	for _, e := range rep.Errors {
		fmt.Fprintf(w, "  ERROR %s\n", e)
	}
}

func median(s *Series) string {
	if s == nil {
		return "-"
	}
	return num(s.Median)
}

func noise(s *Series) string {
	if s == nil {
		return "-"
	}
	return num(s.Min) + " / " + num(s.Median) + " / " + num(s.Max)
}

// num prints large figures without decimals and small ones with two.
func num(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func writeReport(path string, rep *Report) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
