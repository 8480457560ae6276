package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// The day-to-day commands read the node's API and print tables; --json prints the API's
// own answer instead.

type statusCmd struct {
	apiFlag
	JSON bool `help:"Print the API's JSON instead of tables."`
}

type streamsCmd struct {
	apiFlag
	JSON bool `help:"Print the API's JSON instead of a table."`
}

type clientsCmd struct {
	apiFlag
	JSON bool `help:"Print the API's JSON instead of a table."`
}

// clusterView is the part of /api/v1/cluster the status table shows.
type clusterView struct {
	Self     string `json:"self"`
	Leader   string `json:"leader"`
	Degraded bool   `json:"degraded"`
	// DegradedSince and Unplaced: see placement.View and the node's cluster view.
	DegradedSince string   `json:"degraded_since"`
	Unplaced      []string `json:"unplaced"`
	Members       []struct {
		Name    string   `json:"name"`
		State   string   `json:"state"`
		Raft    string   `json:"raft"`
		RTMP    string   `json:"rtmp"`
		HTTP    string   `json:"http"`
		Load    *float64 `json:"load"`
		Witness bool     `json:"witness"`
	} `json:"members"`
	Streams []struct {
		Stream   string   `json:"stream"`
		Master   string   `json:"master"`
		Replicas []string `json:"replicas"`
		Edges    []string `json:"edges"`
		Epoch    uint64   `json:"epoch"`
	} `json:"streams"`
}

type streamsView struct {
	Streams []struct {
		ID      string `json:"id"`
		Clients int    `json:"clients"`
		Kbps    struct {
			Recv float64 `json:"recv_30s"`
			Send float64 `json:"send_30s"`
		} `json:"kbps"`
		Publish struct {
			Active bool `json:"active"`
		} `json:"publish"`
		Video *struct {
			Codec  string `json:"codec"`
			Width  int    `json:"width"`
			Height int    `json:"height"`
		} `json:"video"`
		Audio *struct {
			Codec      string `json:"codec"`
			SampleRate int    `json:"sample_rate"`
		} `json:"audio"`
	} `json:"streams"`
}

type clientsView struct {
	Clients []struct {
		ID        json.Number `json:"id"`
		Stream    string      `json:"stream"`
		IP        string      `json:"ip"`
		Type      string      `json:"type"`
		Publish   bool        `json:"publish"`
		SendBytes uint64      `json:"send_bytes"`
	} `json:"clients"`
}

func (c *statusCmd) Run() error {
	body, err := apiGet(c.url() + "/api/v1/cluster")
	if err != nil || c.JSON {
		return printJSON(body, err)
	}
	var v clusterView
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("cluster view: %w", err)
	}
	printStatus(os.Stdout, v, c.url())
	return nil
}

func printStatus(out io.Writer, v clusterView, api string) {
	leader := v.Leader
	if leader == "" {
		leader = "none (degraded: no Raft leader reachable)"
	}
	fmt.Fprintf(out, "node %s (%s), leader %s\n", v.Self, api, leader)
	if v.Degraded {
		fmt.Fprintf(out, "DEGRADED since %s: no contact with a Raft leader; serving what this node has, placement frozen\n", dash(v.DegradedSince))
		if len(v.Unplaced) > 0 {
			fmt.Fprintf(out, "taken without placement (claimed when a leader is back): %s\n", strings.Join(v.Unplaced, " "))
		}
	}
	fmt.Fprintln(out)
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "MEMBER\tSTATE\tRAFT\tLOAD\tRTMP\tHTTP")
	for _, m := range v.Members {
		load := "-"
		if m.Load != nil {
			load = fmt.Sprintf("%.0f%%", *m.Load*100)
		}
		name := m.Name
		if name == v.Self {
			name += " *"
		}
		role := m.Raft
		if m.Witness {
			role += " (witness)"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", name, m.State, role, load, dash(m.RTMP), dash(m.HTTP))
	}
	w.Flush()
	fmt.Fprintln(out)
	if len(v.Streams) == 0 {
		fmt.Fprintln(out, "no streams")
		return
	}
	sort.Slice(v.Streams, func(i, j int) bool { return v.Streams[i].Stream < v.Streams[j].Stream })
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "STREAM\tMASTER\tREPLICAS\tEDGES\tEPOCH")
	for _, s := range v.Streams {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\n", s.Stream, dash(s.Master), list(s.Replicas), list(s.Edges), s.Epoch)
	}
	w.Flush()
}

func (c *streamsCmd) Run() error {
	body, err := apiGet(c.url() + "/api/v1/streams")
	if err != nil || c.JSON {
		return printJSON(body, err)
	}
	var v streamsView
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("streams: %w", err)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "STREAM\tPUBLISHING\tPLAYERS\tVIDEO\tAUDIO\tIN KBPS\tOUT KBPS")
	for _, s := range v.Streams {
		video, audio := "-", "-"
		if s.Video != nil {
			video = fmt.Sprintf("%s %dx%d", s.Video.Codec, s.Video.Width, s.Video.Height)
		}
		if s.Audio != nil {
			audio = fmt.Sprintf("%s %d Hz", s.Audio.Codec, s.Audio.SampleRate)
		}
		fmt.Fprintf(w, "%s\t%v\t%d\t%s\t%s\t%.0f\t%.0f\n", s.ID, s.Publish.Active, s.Clients, video, audio, s.Kbps.Recv, s.Kbps.Send)
	}
	return w.Flush()
}

func (c *clientsCmd) Run() error {
	body, err := apiGet(c.url() + "/api/v1/clients")
	if err != nil || c.JSON {
		return printJSON(body, err)
	}
	var v clientsView
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("clients: %w", err)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tSTREAM\tKIND\tIP\tROLE\tSENT")
	for _, c := range v.Clients {
		role := "player"
		if c.Publish {
			role = "publisher"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\n", c.ID, c.Stream, c.Type, c.IP, role, c.SendBytes)
	}
	return w.Flush()
}

// kickCmd disconnects one client of a node: an admin action.
type kickCmd struct {
	apiFlag
	ID       uint64 `arg:"" help:"The client's id (peer clients)."`
	APIToken string `help:"The node's --api-token (admin actions need it unless sent from its own host)." env:"PEER_API_TOKEN"`
}

func (c *kickCmd) Run() error {
	return printJSON(apiDo(http.MethodPost, fmt.Sprintf("%s/api/v1/clients/%d/kick", c.url(), c.ID), c.APIToken))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func list(l []string) string {
	if len(l) == 0 {
		return "-"
	}
	return strings.Join(l, ",")
}

// apiGet fetches an API path; a non-200 answer is an error with its body.
func apiGet(url string) ([]byte, error) {
	return apiDo(http.MethodGet, url, "")
}

func apiDo(method, url, token string) ([]byte, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// printJSON prints an API answer indented.
func printJSON(body []byte, err error) error {
	if err != nil {
		return err
	}
	var v any
	if json.Unmarshal(body, &v) == nil {
		body, _ = json.MarshalIndent(v, "", "  ")
	}
	fmt.Println(string(body))
	return nil
}
