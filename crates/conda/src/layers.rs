//! Grouping installed packages into layers.

use crate::package::InstalledPackage;

/// Indexes into the package list, one group per layer, in dependency order. Each package
/// is its own group until there are more than `budget`; then the smallest groups are
/// merged, except packages named in `separate`, which always keep a layer of their own.
pub fn group(packages: &[InstalledPackage], budget: usize, separate: &[String]) -> Vec<Vec<usize>> {
    let is_separate = |i: usize| {
        let name = packages[i].id.split('=').next().unwrap_or_default();
        separate.iter().any(|s| s == name)
    };
    let mut groups: Vec<Vec<usize>> = (0..packages.len()).map(|i| vec![i]).collect();
    let size = |g: &Vec<usize>| g.iter().map(|&i| packages[i].size).sum::<u64>();
    let budget = budget.max(1);
    while groups.len() > budget {
        // The two smallest mergeable groups (ties broken by position, so the plan is stable).
        let mut candidates: Vec<usize> = (0..groups.len()).filter(|&g| !groups[g].iter().any(|&i| is_separate(i))).collect();
        if candidates.len() < 2 {
            break;
        }
        candidates.sort_by_key(|&g| (size(&groups[g]), g));
        let (a, b) = (candidates[0].min(candidates[1]), candidates[0].max(candidates[1]));
        let moved = groups.remove(b);
        groups[a].extend(moved);
        groups[a].sort_unstable();
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, size: u64) -> InstalledPackage {
        InstalledPackage { id: format!("{name}=1=0"), files: vec![], size, post_link: None }
    }

    #[test]
    fn merges_the_smallest_and_keeps_separate_ones() {
        let p = vec![pkg("a", 10), pkg("mkl", 1), pkg("b", 1000), pkg("c", 5), pkg("d", 7)];
        assert_eq!(group(&p, 10, &[]), vec![vec![0], vec![1], vec![2], vec![3], vec![4]]);
        let g = group(&p, 3, &["mkl".into()]);
        assert_eq!(g.len(), 3);
        assert!(g.contains(&vec![1]), "mkl keeps its own layer: {g:?}");
        assert!(g.contains(&vec![2]), "the biggest stays alone: {g:?}");
        assert_eq!(g, group(&p, 3, &["mkl".into()]), "stable");
    }
}
