package ingest_test

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spur-crm/spur/pkg/ingest"
)

// member is one group member as the balancer sees it: a subscription, the
// partitions it owns and the generation it owned them in.
type member struct {
	id     string
	topics []string
	owned  map[string][]int32
	gen    int32
}

type plan map[string]map[string][]int32 // member => topic => partitions

// balance runs the balancer the way the group leader's client does: the
// members' join metadata as the balancer encodes it, then the sync
// assignments as the members decode them.
func balance(t *testing.T, ms []member, counts map[string]int32) plan {
	t.Helper()
	b := ingest.CopartitionBalancer()
	if b.ProtocolName() != "spur-copartition-v1" || !b.IsCooperative() {
		t.Fatalf("balancer %q cooperative=%v", b.ProtocolName(), b.IsCooperative())
	}
	var jm []kmsg.JoinGroupResponseMember
	for _, m := range ms {
		j := kmsg.NewJoinGroupResponseMember()
		j.MemberID = m.id
		topics := slices.Clone(m.topics)
		sort.Strings(topics)
		owned := map[string][]int32{}
		for tp, ps := range m.owned {
			owned[tp] = slices.Sorted(slices.Values(ps))
		}
		j.ProtocolMetadata = b.JoinGroupMetadata(topics, owned, m.gen)
		jm = append(jm, j)
	}
	mb, interests, err := b.MemberBalancer(jm)
	if err != nil {
		t.Fatal(err)
	}
	for tp := range counts {
		if _, ok := interests[tp]; !ok {
			t.Fatalf("topic %s missing from the members' interests %v", tp, interests)
		}
	}
	into, err := mb.(kgo.GroupMemberBalancerOrError).BalanceOrError(counts)
	if err != nil {
		t.Fatal(err)
	}
	out := plan{}
	for _, a := range into.IntoSyncAssignment() {
		m, err := b.ParseSyncAssignment(a.MemberAssignment)
		if err != nil {
			t.Fatal(err)
		}
		out[a.MemberID] = m
	}
	return out
}

// tasksOf returns the tasks in an assignment, failing the test if a task
// is there without all of the given topics' partitions of that number.
func tasksOf(t *testing.T, who string, a map[string][]int32, topics map[string]int32) []int32 {
	t.Helper()
	seen := map[int32]int{}
	for _, ps := range a {
		for _, p := range ps {
			seen[p]++
		}
	}
	var out []int32
	for p, k := range seen {
		want := 0
		for _, c := range topics {
			if p < c {
				want++
			}
		}
		if k != want {
			t.Fatalf("%s holds task %d half (%d of %d topics): %v", who, p, k, want, a)
		}
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// anyOf returns the tasks of which an assignment holds any partition.
func anyOf(a map[string][]int32) []int32 {
	var out []int32
	for _, ps := range a {
		for _, p := range ps {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	slices.Sort(out)
	return out
}

// checkCopartitioned fails unless every task is held whole by exactly one
// member and, when all, every task is held.
func checkCopartitioned(t *testing.T, p plan, counts map[string]int32, all bool) map[string][]int32 {
	t.Helper()
	owners := map[int32]string{}
	byMember := map[string][]int32{}
	for m, a := range p {
		for _, task := range tasksOf(t, m, a, counts) {
			if o, ok := owners[task]; ok {
				t.Fatalf("task %d assigned to %s and %s", task, o, m)
			}
			owners[task] = m
			byMember[m] = append(byMember[m], task)
		}
	}
	if all {
		n := int32(0)
		for _, c := range counts {
			n = max(n, c)
		}
		if int32(len(owners)) != n {
			t.Fatalf("%d of %d tasks assigned: %v", len(owners), n, p)
		}
	}
	return byMember
}

// converge plays the cooperative protocol: each round the members join with
// what they own, keep what the plan gives them and revoke the rest; it stops
// when a round changes nothing. It returns the final tasks per member and
// the tasks each member revoked on the way, and checks that no partition is
// ever planned for a member while another still owns it.
func converge(t *testing.T, ms []member, counts map[string]int32) (final, revoked map[string][]int32, rounds int) {
	t.Helper()
	revoked = map[string][]int32{}
	gen := int32(1)
	for _, m := range ms {
		gen = max(gen, m.gen)
	}
	for rounds = 1; rounds <= 5; rounds++ {
		p := balance(t, ms, counts)
		final = checkCopartitioned(t, p, counts, false)
		changed := false
		for i := range ms {
			m := &ms[i]
			got := p[m.id]
			for tp, ps := range got {
				for _, part := range ps {
					if !slices.Contains(m.owned[tp], part) {
						for _, o := range ms {
							if o.id != m.id && slices.Contains(o.owned[tp], part) {
								t.Fatalf("round %d: %s/%d planned for %s while %s owns it", rounds, tp, part, m.id, o.id)
							}
						}
					}
				}
			}
			before := anyOf(m.owned) // the input may hold half a task
			after := tasksOf(t, m.id, got, counts)
			for _, task := range before {
				if !slices.Contains(after, task) {
					revoked[m.id] = append(revoked[m.id], task)
				}
			}
			if !reflect.DeepEqual(before, after) {
				changed = true
			}
		}
		gen++
		for i := range ms {
			ms[i].owned = p[ms[i].id]
			ms[i].gen = gen
		}
		if !changed {
			return final, revoked, rounds
		}
	}
	t.Fatalf("no stable plan after 5 rounds: %v", final)
	return nil, nil, 0
}

var twoTopics = []string{"shop.clickstream", "shop.orders"}

func counts(n int32) map[string]int32 {
	return map[string]int32{"shop.clickstream": n, "shop.orders": n}
}

// owns builds an ownership of whole tasks.
func owns(tasks ...int32) map[string][]int32 {
	if len(tasks) == 0 {
		return nil
	}
	return map[string][]int32{"shop.clickstream": slices.Clone(tasks), "shop.orders": slices.Clone(tasks)}
}

func sizes(m map[string][]int32) []int {
	var out []int
	for _, ts := range m {
		out = append(out, len(ts))
	}
	sort.Ints(out)
	return out
}

func TestCopartitionFreshGroupIsBalancedAndDeterministic(t *testing.T) {
	for _, tc := range []struct {
		members, tasks int32
		want           []int
	}{
		{1, 4, []int{4}},
		{3, 6, []int{2, 2, 2}},
		{3, 7, []int{2, 2, 3}},
		{4, 3, []int{1, 1, 1}}, // one member idles
		{10, 256, []int{25, 25, 25, 25, 26, 26, 26, 26, 26, 26}},
	} {
		t.Run(fmt.Sprintf("%d members %d tasks", tc.members, tc.tasks), func(t *testing.T) {
			var ms []member
			for i := range tc.members {
				ms = append(ms, member{id: fmt.Sprintf("m%d", i), topics: twoTopics})
			}
			p := balance(t, ms, counts(tc.tasks))
			got := checkCopartitioned(t, p, counts(tc.tasks), true)
			if !reflect.DeepEqual(sizes(got), tc.want) {
				t.Errorf("task counts %v, want %v (%v)", sizes(got), tc.want, got)
			}
			if again := balance(t, ms, counts(tc.tasks)); !reflect.DeepEqual(again, p) {
				t.Errorf("same input, different plans:\n%v\n%v", p, again)
			}
		})
	}
}

// TestCopartitionJoinMovesOnlyWhatItTakes: a third member joining two takes
// one task from each; every other task stays where it was, never revoked.
func TestCopartitionJoinMovesOnlyWhatItTakes(t *testing.T) {
	ms := []member{
		{id: "a", topics: twoTopics, owned: owns(0, 1, 2), gen: 3},
		{id: "b", topics: twoTopics, owned: owns(3, 4, 5), gen: 3},
		{id: "c", topics: twoTopics},
	}
	// First round: the moving tasks are revoked, not yet handed over.
	first := checkCopartitioned(t, balance(t, ms, counts(6)), counts(6), false)
	if len(first["a"]) != 2 || len(first["b"]) != 2 || len(first["c"]) != 0 {
		t.Fatalf("first round %v: want a and b to give up one task each, c to wait", first)
	}
	final, revoked, rounds := converge(t, ms, counts(6))
	if rounds != 3 { // revoke, hand over, stable
		t.Errorf("settled in %d rounds, want 3", rounds)
	}
	if len(revoked["a"]) != 1 || len(revoked["b"]) != 1 || len(revoked["c"]) != 0 {
		t.Errorf("revoked %v: want exactly one task from a and one from b", revoked)
	}
	if !reflect.DeepEqual(sizes(final), []int{2, 2, 2}) {
		t.Errorf("final %v: not balanced", final)
	}
	for m, was := range map[string][]int32{"a": {0, 1, 2}, "b": {3, 4, 5}} {
		for _, task := range final[m] {
			if !slices.Contains(was, task) {
				t.Errorf("%s was given task %d it did not own", m, task)
			}
		}
	}
	if !slices.Contains(final["c"], revoked["a"][0]) || !slices.Contains(final["c"], revoked["b"][0]) {
		t.Errorf("c holds %v, want the revoked %v", final["c"], revoked)
	}
}

// TestCopartitionLeaveRedistributesOnlyItsTasks: the tasks of a member that
// left go to the others in one rebalance, and nobody revokes anything.
func TestCopartitionLeaveRedistributesOnlyItsTasks(t *testing.T) {
	ms := []member{
		{id: "a", topics: twoTopics, owned: owns(0, 3), gen: 4},
		{id: "b", topics: twoTopics, owned: owns(1, 4), gen: 4},
	} // c owned 2 and 5 and left
	p := balance(t, ms, counts(6))
	got := checkCopartitioned(t, p, counts(6), true)
	for m, kept := range map[string][]int32{"a": {0, 3}, "b": {1, 4}} {
		for _, task := range kept {
			if !slices.Contains(got[m], task) {
				t.Errorf("%s lost task %d: %v", m, task, got)
			}
		}
	}
	if !reflect.DeepEqual(sizes(got), []int{3, 3}) {
		t.Errorf("%v: not balanced", got)
	}
	_, revoked, rounds := converge(t, ms, counts(6))
	if len(revoked) != 0 || rounds != 2 {
		t.Errorf("revoked %v in %d rounds, want nothing revoked and the first plan stable", revoked, rounds)
	}
}

// TestCopartitionScaleOutFromOne: one member owning everything, two join.
func TestCopartitionScaleOutFromOne(t *testing.T) {
	ms := []member{
		{id: "a", topics: twoTopics, owned: owns(0, 1, 2, 3, 4, 5, 6, 7, 8), gen: 2},
		{id: "b", topics: twoTopics},
		{id: "c", topics: twoTopics},
	}
	final, revoked, _ := converge(t, ms, counts(9))
	if !reflect.DeepEqual(sizes(final), []int{3, 3, 3}) {
		t.Errorf("final %v: not balanced", final)
	}
	if len(revoked["a"]) != 6 || len(revoked["b"])+len(revoked["c"]) != 0 {
		t.Errorf("revoked %v: want exactly the six tasks a gave away", revoked)
	}
}

// TestCopartitionStaleClaim: a member that missed rebalances still lists a
// task another member owns in a later generation; the current owner keeps
// it without a revoke.
func TestCopartitionStaleClaim(t *testing.T) {
	ms := []member{
		{id: "a", topics: twoTopics, owned: owns(0, 1), gen: 5},
		{id: "b", topics: twoTopics, owned: owns(1, 2, 3), gen: 7},
	}
	got := checkCopartitioned(t, balance(t, ms, counts(4)), counts(4), false)
	if !slices.Contains(got["b"], 1) {
		t.Errorf("b owns task 1 in the later generation but lost it: %v", got)
	}
}

// TestCopartitionSplitTaskIsReunited: ownership left by a balancer that
// does not co-partition (a task's partitions on two members) is never
// extended: the task is revoked from both and handed over whole.
func TestCopartitionSplitTaskIsReunited(t *testing.T) {
	ms := []member{
		{id: "a", topics: twoTopics, owned: map[string][]int32{"shop.clickstream": {0, 1}, "shop.orders": {0}}, gen: 3},
		{id: "b", topics: twoTopics, owned: map[string][]int32{"shop.orders": {1}}, gen: 3},
	}
	first := checkCopartitioned(t, balance(t, ms, counts(2)), counts(2), false)
	if !reflect.DeepEqual(first, map[string][]int32{"a": {0}}) {
		t.Errorf("first round %v: want task 1 held by nobody until both halves are revoked", first)
	}
	final, _, _ := converge(t, ms, counts(2))
	if !reflect.DeepEqual(sizes(final), []int{1, 1}) {
		t.Errorf("final %v", final)
	}
}

// TestCopartitionUnevenSubscriptions: tasks go only to members subscribing
// to all of their topics; when nobody does, a task's partitions are never
// spread over two members.
func TestCopartitionUnevenSubscriptions(t *testing.T) {
	t.Run("one member lacks a topic", func(t *testing.T) {
		ms := []member{
			{id: "a", topics: []string{"shop.clickstream"}},
			{id: "b", topics: twoTopics},
			{id: "c", topics: twoTopics},
		}
		got := checkCopartitioned(t, balance(t, ms, counts(4)), counts(4), true)
		if len(got["a"]) != 0 || len(got["b"]) != 2 || len(got["c"]) != 2 {
			t.Errorf("%v: want b and c to share the tasks", got)
		}
	})
	t.Run("disjoint subscriptions", func(t *testing.T) {
		ms := []member{
			{id: "a", topics: []string{"shop.clickstream"}},
			{id: "b", topics: []string{"shop.orders"}},
		}
		p := balance(t, ms, counts(4))
		owner := map[int32]string{}
		for m, a := range p {
			for _, ps := range a {
				for _, task := range ps {
					if o, ok := owner[task]; ok && o != m {
						t.Fatalf("task %d split between %s and %s: %v", task, o, m, p)
					}
					owner[task] = m
				}
			}
		}
		if len(owner) != 4 {
			t.Errorf("%v: want every task number owned by someone", p)
		}
	})
	t.Run("unequal partition counts", func(t *testing.T) {
		c := map[string]int32{"shop.clickstream": 4, "shop.orders": 2}
		ms := []member{{id: "a", topics: twoTopics}, {id: "b", topics: twoTopics}}
		got := checkCopartitioned(t, balance(t, ms, c), c, true)
		if !reflect.DeepEqual(sizes(got), []int{2, 2}) {
			t.Errorf("%v", got)
		}
	})
	t.Run("a member subscribes to a topic the others do not", func(t *testing.T) {
		ms := []member{
			{id: "a", topics: []string{"shop.clickstream", "shop.orders", "shop.returns"}},
			{id: "b", topics: twoTopics},
		}
		c := map[string]int32{"shop.clickstream": 2, "shop.orders": 2, "shop.returns": 2}
		got := checkCopartitioned(t, balance(t, ms, c), c, true)
		if len(got["a"]) != 2 {
			t.Errorf("%v: only a subscribes to every topic", got)
		}
	})
}

func TestCopartitionNoMembersOrTopics(t *testing.T) {
	if p := balance(t, []member{{id: "a", topics: twoTopics}}, map[string]int32{}); len(p["a"]) != 0 {
		t.Errorf("no topics: %v", p)
	}
}
