def count(values):
    if len(values) < 2:
        return values, 0
    mid = len(values) // 2
    left, a = count(values[:mid])
    right, b = count(values[mid:])
    merged, inversions, j = [], a + b, 0
    for x in left:
        while j < len(right) and right[j] < x:
            merged.append(right[j])
            j += 1
        inversions += j
        merged.append(x)
    merged.extend(right[j:])
    return merged, inversions


n = int(input())
print(count(list(map(int, input().split()))[:n])[1])
