package ingest

import (
	"slices"
	"sort"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// CopartitionProtocol is the group protocol name of CopartitionBalancer. A
// change to the plan's rules that members of different versions would
// disagree on needs a new name.
const CopartitionProtocol = "spur-copartition-v1"

// CopartitionBalancer returns spur's group balancer: cooperative (KIP-429),
// sticky, and co-partitioning.
//
// The unit of assignment is a task, partition p of every subscribed topic:
// a member is given all of a task's partitions or none of them. Members
// keep the tasks they own (their join metadata lists them, with the
// generation they were owned in) as long as task counts stay within one of
// each other; only the tasks needed to even them out move, from the most
// loaded members to the least loaded. The plan is a pure function of the
// members (in the order the client sorts them: instance id, then member id),
// their subscriptions and claims, and the partition counts.
//
// Cooperative: a task moving from one member to another is left out of
// both members' assignments in the first rebalance, so its old owner
// revokes it (stops, drains and commits its worker) and rejoins; the
// follow-up rebalance, which franz-go starts on its own, gives it to the
// new owner. Tasks that stay put are never revoked.
//
// A task is assigned only to members that subscribe to the most of its
// topics. In spur every member subscribes to the same input topics, so
// every member qualifies; while subscriptions differ (a rolling change of
// topic names), members that lack a topic get no tasks while any member
// has them all. When no member subscribes to all of a task's topics, the
// owner gets the partitions of the topics it subscribes to and the others
// stay unassigned: a task split across two members would have two writers.
//
// Members of a group can list several balancers; the group uses the first
// that every member supports, and franz-go runs the group cooperatively
// whenever the chosen balancer is. See New for the list spur uses and the
// upgrade from the range balancer.
func CopartitionBalancer() kgo.GroupBalancer { return copartition{} }

type copartition struct{}

func (copartition) ProtocolName() string { return CopartitionProtocol }

func (copartition) IsCooperative() bool { return true }

// JoinGroupMetadata is the standard consumer protocol metadata (as the
// cooperative-sticky balancer sends it): the subscription, the partitions
// owned and the generation they were owned in, which tells a current claim
// from the stale one of a member that missed rebalances.
func (copartition) JoinGroupMetadata(topics []string, current map[string][]int32, generation int32) []byte {
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Version = 3
	meta.Topics = topics
	meta.Generation = generation
	owned := make([]string, 0, len(current))
	for t := range current {
		owned = append(owned, t)
	}
	sort.Strings(owned)
	for _, t := range owned {
		op := kmsg.NewConsumerMemberMetadataOwnedPartition()
		op.Topic = t
		op.Partitions = current[t]
		meta.OwnedPartitions = append(meta.OwnedPartitions, op)
	}
	return meta.AppendTo(nil)
}

func (copartition) ParseSyncAssignment(assignment []byte) (map[string][]int32, error) {
	return kgo.ParseConsumerSyncAssignment(assignment)
}

func (c copartition) MemberBalancer(members []kmsg.JoinGroupResponseMember) (kgo.GroupMemberBalancer, map[string]struct{}, error) {
	b, err := kgo.NewConsumerBalancer(c, members)
	return b, b.MemberTopics(), err
}

// Balance implements kgo.ConsumerBalancerBalance.
func (copartition) Balance(b *kgo.ConsumerBalancer, topics map[string]int32) kgo.IntoSyncAssignment {
	var ms []planMember
	b.EachMember(func(m *kmsg.JoinGroupResponseMember, meta *kmsg.ConsumerMemberMetadata) {
		pm := planMember{id: m.MemberID, subscribed: map[string]bool{}, owned: map[string][]int32{}, generation: meta.Generation}
		for _, t := range meta.Topics {
			pm.subscribed[t] = true
		}
		for _, o := range meta.OwnedPartitions {
			pm.owned[o.Topic] = append(pm.owned[o.Topic], o.Partitions...)
		}
		ms = append(ms, pm)
	})
	assigned := planTasks(ms, topics)
	p := b.NewPlan()
	for i := range ms {
		m, _ := b.MemberAt(i)
		for t, ps := range assigned[i] {
			p.AddPartitions(m, t, ps)
		}
	}
	return p
}

// planMember is one member's input to planTasks.
type planMember struct {
	id         string
	subscribed map[string]bool
	owned      map[string][]int32
	generation int32
}

// planTasks returns each member's assignment (indexed like members): the
// balanced sticky plan, less the tasks that must first be revoked from a
// member that still owns some of their partitions.
func planTasks(members []planMember, topics map[string]int32) []map[string][]int32 {
	out := make([]map[string][]int32, len(members))
	for i := range out {
		out[i] = map[string][]int32{}
	}
	if len(members) == 0 {
		return out
	}

	// A task's topics: those with a partition of its number.
	names := make([]string, 0, len(topics))
	n := int32(0)
	for t, c := range topics {
		if c > 0 {
			names = append(names, t)
			n = max(n, c)
		}
	}
	sort.Strings(names)
	taskTopics := make([][]string, n)
	for _, t := range names {
		for p := int32(0); p < topics[t]; p++ {
			taskTopics[p] = append(taskTopics[p], t)
		}
	}

	// Candidates: the members that subscribe to the most of a task's
	// topics. In the usual group every member subscribes to every topic,
	// and every task has the same candidates.
	eligible := make([][]bool, n) // task => member index => candidate
	for p := range n {
		best := 0
		cover := make([]int, len(members))
		for i, m := range members {
			for _, t := range taskTopics[p] {
				if m.subscribed[t] {
					cover[i]++
				}
			}
			best = max(best, cover[i])
		}
		eligible[p] = make([]bool, len(members))
		for i := range members {
			eligible[p][i] = best > 0 && cover[i] == best
		}
	}

	// Claims. The current claim on a topic partition is the one made in
	// the highest generation; a member that missed rebalances may still
	// list a partition that has moved on since.
	type tp struct {
		t string
		p int32
	}
	maxGen := map[tp]int32{}
	claims := make([]map[int32]int, len(members)) // member => task => partitions currently claimed
	current := make([]map[tp]bool, len(members))  // member => its current claims
	for _, m := range members {
		for t, ps := range m.owned {
			for _, p := range ps {
				if g, ok := maxGen[tp{t, p}]; !ok || m.generation > g {
					maxGen[tp{t, p}] = m.generation
				}
			}
		}
	}
	claimedByAny := make([][]bool, n) // task => member index => claims any of its partitions, stale or not
	for p := range n {
		claimedByAny[p] = make([]bool, len(members))
	}
	for i, m := range members {
		claims[i] = map[int32]int{}
		current[i] = map[tp]bool{}
		for t, ps := range m.owned {
			if _, ok := topics[t]; !ok {
				continue
			}
			for _, p := range ps {
				if p < 0 || p >= topics[t] {
					continue
				}
				claimedByAny[p][i] = true
				if m.generation >= maxGen[tp{t, p}] && !current[i][tp{t, p}] {
					claims[i][p]++
					current[i][tp{t, p}] = true
				}
			}
		}
	}

	// Keep: each task stays with the candidate holding most of its
	// current partitions (the first such member on a tie).
	owner := make([]int, n)
	load := make([]int, len(members))
	var free []int32
	for p := range n {
		owner[p] = -1
		most := 0
		for i := range members {
			if eligible[p][i] && claims[i][p] > most {
				owner[p], most = i, claims[i][p]
			}
		}
		if owner[p] < 0 {
			free = append(free, p)
			continue
		}
		load[owner[p]]++
	}

	// Free tasks go, in order, to the least loaded candidate.
	for _, p := range free {
		best := -1
		for i := range members {
			if eligible[p][i] && (best < 0 || load[i] < load[best]) {
				best = i
			}
		}
		if best >= 0 {
			owner[p] = best
			load[best]++
		}
	}

	// Even out: move a task from the most loaded member to the least
	// loaded while they differ by more than one. With equal candidates
	// this moves exactly the tasks beyond each member's share; every
	// move lowers the sum of squared loads, so the loop ends.
	order := make([]int, len(members))
	for {
		for i := range order {
			order[i] = i
		}
		sort.SliceStable(order, func(a, b int) bool { return load[order[a]] > load[order[b]] })
		moved := false
		for _, src := range order {
			for k := len(order) - 1; k >= 0 && !moved; k-- {
				dst := order[k]
				if load[src]-load[dst] <= 1 {
					break
				}
				// The highest-numbered task of src that dst may take.
				for p := n - 1; p >= 0; p-- {
					if owner[p] == src && eligible[p][dst] {
						owner[p] = dst
						load[src]--
						load[dst]++
						moved = true
						break
					}
				}
			}
			if moved {
				break
			}
		}
		if !moved {
			break
		}
	}

	// Cooperative step, per task: a task its new owner does not already
	// hold whole waits while any other member claims one of its
	// partitions. That member's assignment omits the task, so it revokes
	// the task and rejoins, and the next rebalance hands the task over
	// whole. Checking the task rather than each partition means nobody
	// ever runs half a task while another member runs the other half.
	for p := range n {
		i := owner[p]
		if i < 0 {
			continue
		}
		var ts []string
		holds := true
		for _, t := range taskTopics[p] {
			if members[i].subscribed[t] {
				ts = append(ts, t)
				holds = holds && current[i][tp{t, p}]
			}
		}
		if !holds {
			wait := false
			for j := range members {
				if j != i && claimedByAny[p][j] {
					wait = true
				}
			}
			if wait {
				continue
			}
		}
		for _, t := range ts {
			out[i][t] = append(out[i][t], p)
		}
	}
	for _, m := range out {
		for _, ps := range m {
			slices.Sort(ps)
		}
	}
	return out
}
